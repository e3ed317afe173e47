"""Apply a peft-format LoRA adapter directory (written by peft or by llmzoo) to a built model.

Which modules to wrap, and each one's rank, come from the tensors themselves (peft's target_modules
may be a regex, or name modules the saved layers do not cover); alpha from lora_alpha and
alpha_pattern. Every tensor must fit a linear layer of this base, by name and by shape.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.lora import LoraSpec
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.peft_format import PREFIX, SUFFIXES, WEIGHTS, read_adapter_config, read_adapter_tensors
from llmzoo.peft.targets import UNSUPPORTED
from llmzoo.peft.transform import apply_lora, lora_modules, lora_spec


def load_adapter(model: nn.Module, directory: str | Path) -> nn.Module:
    """Wrap `model`'s modules as the adapter in `directory` says and load its tensors (in place)."""
    cfg = read_adapter_config(directory)
    grouped = _group(read_adapter_tensors(directory), directory)
    names = ModuleNames(model.config)
    specs: dict[str, LoraSpec] = {}
    for hf_name, tensors in grouped.items():
        zoo_name = names.to_zoo(hf_name)
        base = _linear(model, zoo_name)
        if base is None:
            raise LlmzooError(f"adapter module {hf_name!r} has no counterpart in this {model.config.family} base"
                              f"{_example_name(model, names)}; the adapter was made for "
                              f"{cfg.get('base_model_name_or_path') or 'another model'}")
        if zoo_name.rsplit(".", 1)[-1] in UNSUPPORTED:
            raise LlmzooError(f"adapter module {hf_name!r}: LoRA on {zoo_name} is not supported yet "
                              f"(llmzoo's fused loss reads its weight directly)")
        _check_shapes(hf_name, tensors, base, cfg.get("use_dora", False))
        alpha = _pattern_value(cfg.get("alpha_pattern") or {}, hf_name, cfg.get("lora_alpha", 8))
        specs[zoo_name] = lora_spec(tensors["lora_A.weight"].shape[0], alpha, cfg.get("lora_dropout", 0.0),
                                    cfg.get("use_rslora", False), cfg.get("use_dora", False))
    apply_lora(model, specs)
    modules = lora_modules(model)
    with torch.no_grad():
        for hf_name, tensors in grouped.items():
            module = modules[names.to_zoo(hf_name)]
            module.lora_A.weight.copy_(tensors["lora_A.weight"])
            module.lora_B.weight.copy_(tensors["lora_B.weight"])
            if module.lora_magnitude_vector is not None:
                module.lora_magnitude_vector.copy_(tensors["lora_magnitude_vector"])
    return model


def _group(state: dict[str, torch.Tensor], directory: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """{hf module path: {suffix: tensor}}; a tensor llmzoo would not use is an error, not ignored."""
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        suffix = next((s for s in SUFFIXES if key.endswith("." + s)), None)
        if not key.startswith(PREFIX) or suffix is None:
            raise LlmzooError(f"{directory}: tensor {key!r} is not a LoRA tensor llmzoo loads "
                              f"(expected {PREFIX}<module>.{{{','.join(SUFFIXES)}}})")
        grouped.setdefault(key[len(PREFIX): -len(suffix) - 1], {})[suffix] = tensor
    if not grouped:
        raise LlmzooError(f"{directory}: {WEIGHTS} holds no tensors")
    return grouped


def _linear(model: nn.Module, name: str | None) -> nn.Linear | None:
    if name is None:
        return None
    try:
        module = model.get_submodule(name)
    except AttributeError:
        return None
    return module if isinstance(module, nn.Linear) else None


def _example_name(model: nn.Module, names: ModuleNames) -> str:
    """How this base names its linear layers, e.g. " (whose layers are named like 'encoder.block.0...q')"."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            try:
                return f" (whose layers are named like {names.to_hf(name)!r})"
            except LlmzooError:
                continue
    return ""


def _check_shapes(hf_name: str, tensors: dict[str, torch.Tensor], base: nn.Linear, dora: bool) -> None:
    need = ("lora_A.weight", "lora_B.weight") + (("lora_magnitude_vector",) if dora else ())
    missing = [s for s in need if s not in tensors]
    if missing:
        raise LlmzooError(f"adapter module {hf_name!r} lacks {missing[0]}")
    if not dora and "lora_magnitude_vector" in tensors:
        raise LlmzooError(f"adapter module {hf_name!r} has a DoRA magnitude vector but its config says use_dora=false")
    r = tensors["lora_A.weight"].shape[0]
    want = {"lora_A.weight": (r, base.in_features), "lora_B.weight": (base.out_features, r),
            "lora_magnitude_vector": (base.out_features,)}
    for suffix, tensor in tensors.items():
        if tuple(tensor.shape) != want[suffix]:
            raise LlmzooError(f"adapter tensor {hf_name}.{suffix} has shape {tuple(tensor.shape)} but this base's "
                              f"{hf_name} ({base.in_features} -> {base.out_features}) needs {want[suffix]} "
                              f"(an adapter for another model?)")


def _pattern_value(patterns: dict[str, Any], hf_name: str, default: Any) -> Any:
    """peft's rank_pattern/alpha_pattern rule: the first key that matches the end of the path."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", hf_name):
            return value
    return default
