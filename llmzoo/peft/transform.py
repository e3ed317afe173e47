"""PEFT as a transform on a built model: apply, list what trains, merge, disable.

    llmzoo.peft.apply(model, "lora", target_modules=["q_proj", "v_proj"], r=8, lora_alpha=16)
    optimizer = torch.optim.AdamW(llmzoo.peft.trainable_parameters(model))
    with llmzoo.peft.disabled(model): ...   # the base model's outputs, same network
    llmzoo.peft.merge(model)                 # fold the adapter into the weights; plain nn.Linear again
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.lora import LoraLinear, LoraSpec
from llmzoo.peft.targets import find_targets

METHODS = ("lora",)
LORA_OPTIONS = ("target_modules", "r", "lora_alpha", "lora_dropout", "use_rslora", "use_dora")


def apply(model: nn.Module, method: str, **options: Any) -> nn.Module:
    """Wrap the target modules of `model` in place (and return it); freezes every base parameter."""
    if method != "lora":
        raise LlmzooError(f"unknown PEFT method {method!r}; available: {', '.join(METHODS)}")
    unknown = sorted(set(options) - set(LORA_OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown LoRA option(s) {', '.join(unknown)}; valid: {', '.join(LORA_OPTIONS)}")
    if lora_modules(model):
        raise LlmzooError("this model already has a LoRA adapter; llmzoo.peft.merge(model) it first")
    targets = options.get("target_modules", ("q_proj", "v_proj"))
    spec = lora_spec(options.get("r", 8), options.get("lora_alpha", 8), options.get("lora_dropout", 0.0),
                     options.get("use_rslora", False), options.get("use_dora", False))
    apply_lora(model, {name: spec for name in find_targets(model, targets)})
    return model


def lora_spec(r: Any, alpha: Any, dropout: Any = 0.0, use_rslora: bool = False, use_dora: bool = False) -> LoraSpec:
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise LlmzooError(f"LoRA rank r must be a positive integer, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise LlmzooError(f"lora_alpha must be a positive number, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise LlmzooError(f"lora_dropout must be in [0, 1), got {dropout!r}")
    return LoraSpec(r=r, alpha=alpha, dropout=float(dropout), use_rslora=bool(use_rslora), use_dora=bool(use_dora))


def apply_lora(model: nn.Module, specs: dict[str, LoraSpec]) -> None:
    """Wrap each named nn.Linear with its spec; freeze everything that is not an adapter."""
    if lora_modules(model):
        raise LlmzooError("this model already has a LoRA adapter; llmzoo.peft.merge(model) it first")
    for p in model.parameters():
        p.requires_grad_(False)
    for name, spec in specs.items():
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, LoraLinear(getattr(owner, attr), spec))


def lora_modules(model: nn.Module) -> dict[str, LoraLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLinear)}


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """What trains: the parameters with requires_grad (the adapters, after apply)."""
    return [p for p in model.parameters() if p.requires_grad]


def merge(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put plain nn.Linear layers back (in place).
    The merged model trains as a full model again: its parameters are unfrozen."""
    wrapped = lora_modules(model)
    if not wrapped:
        raise LlmzooError("this model has no LoRA adapter to merge")
    for name, module in wrapped.items():
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, module.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@contextlib.contextmanager
def disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block the model computes its base outputs: one network serves as its own
    reference model (the frozen policy of DPO/PPO) without a second copy of the weights."""
    modules = list(lora_modules(model).values())
    before = [m.disabled for m in modules]
    for m in modules:
        m.disabled = True
    try:
        yield model
    finally:
        for m, state in zip(modules, before):
            m.disabled = state

