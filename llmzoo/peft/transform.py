"""PEFT as a transform on a built model: apply, list what trains, merge, disable, for every method
registered in llmzoo.peft.methods.

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
from llmzoo.peft.methods import adapter_modules, method_named, method_of


def apply(model: nn.Module, method: str, **options: Any) -> nn.Module:
    """Add `method`'s adapter to `model` in place (and return it); freezes every base parameter."""
    handler = method_named(method)
    present = method_of(model)
    if present is not None:
        raise LlmzooError(f"this model already has a {present.display} adapter; llmzoo.peft.merge(model) it first "
                          f"(llmzoo holds one adapter per model)")
    for p in model.parameters():
        p.requires_grad_(False)
    handler.apply(model, **options)
    return model


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """What trains: the parameters with requires_grad (the adapters, after apply)."""
    return [p for p in model.parameters() if p.requires_grad]


def merge(model: nn.Module) -> nn.Module:
    """Fold the adapter into the base weights and put plain layers back (in place).
    The merged model trains as a full model again: its parameters are unfrozen."""
    method = method_of(model)
    if method is None:
        raise LlmzooError("this model has no adapter to merge (no LoRA adapter or other PEFT method applied)")
    if method.merge is None:
        raise LlmzooError(f"a {method.display} adapter cannot be merged into the weights (it adds computation, not a "
                          f"weight change); keep it applied, or save it with llmzoo.peft.save_adapter(model, dir)")
    method.merge(model)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@contextlib.contextmanager
def disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block the model computes its base outputs: one network serves as its own
    reference model (the frozen policy of DPO/PPO) without a second copy of the weights."""
    modules = list(adapter_modules(model).values())
    before = [m.disabled for m in modules]
    for m in modules:
        m.disabled = True
    try:
        yield model
    finally:
        for m, state in zip(modules, before):
            m.disabled = state
