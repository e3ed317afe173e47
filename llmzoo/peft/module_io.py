"""Helpers every per-module method's save/load shares: peft's tensor keys, finding the base layer a
saved module path names (with a message that says how this base names its layers), and the
target_modules list written for peft."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.targets import UNSUPPORTED

PREFIX = "base_model.model."  # peft's key prefix: the PeftModel wraps the transformers model


def group_tensors(state: dict[str, torch.Tensor], suffixes: Iterable[str], where: str,
                  kind: str) -> dict[str, dict[str, torch.Tensor]]:
    """{hf module path: {suffix: tensor}}; a tensor llmzoo would not use is an error, not ignored."""
    suffixes = tuple(suffixes)
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        suffix = next((s for s in suffixes if key.endswith("." + s)), None)
        if not key.startswith(PREFIX) or suffix is None:
            raise LlmzooError(f"{where}: tensor {key!r} is not a {kind} tensor llmzoo loads "
                              f"(expected {PREFIX}<module>.{{{','.join(suffixes)}}})")
        grouped.setdefault(key[len(PREFIX): -len(suffix) - 1], {})[suffix] = tensor
    if not grouped:
        raise LlmzooError(f"{where}: the adapter holds no tensors")
    return grouped


def is_linear(module: nn.Module) -> bool:
    """A plain or NF4-quantized linear layer (llmzoo.peft.nf4), the layers per-module methods wrap."""
    from llmzoo.peft.nf4 import NF4Linear

    return isinstance(module, (nn.Linear, NF4Linear))


def linear_or_error(model: nn.Module, names: ModuleNames, hf_name: str, cfg: dict[str, Any],
                    kind: str) -> tuple[str, nn.Module]:
    """(llmzoo name, base layer) of the linear layer a saved module path names, else a one-line error."""
    zoo_name = names.to_zoo(hf_name)
    base = None
    if zoo_name is not None:
        try:
            base = model.get_submodule(zoo_name)
        except AttributeError:
            base = None
    if base is None or not is_linear(base):
        raise LlmzooError(f"adapter module {hf_name!r} has no counterpart in this {model.config.family} base"
                          f"{_example_name(model, names)}; the adapter was made for "
                          f"{cfg.get('base_model_name_or_path') or 'another model'}")
    if zoo_name.rsplit(".", 1)[-1] in UNSUPPORTED:
        raise LlmzooError(f"adapter module {hf_name!r}: {kind} on {zoo_name} is not supported yet "
                          f"(llmzoo's fused loss reads its weight directly)")
    return zoo_name, base


def _example_name(model: nn.Module, names: ModuleNames) -> str:
    """How this base names its linear layers, e.g. " (whose layers are named like 'encoder.block.0...q')"."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            try:
                return f" (whose layers are named like {names.to_hf(name)!r})"
            except LlmzooError:
                continue
    return ""


def leaf_targets(model: nn.Module, hf: dict[str, str], names: ModuleNames) -> list[str]:
    """Leaf names ("q_proj") when they select exactly the adapted modules, else full paths,
    so peft wraps the same modules llmzoo did. hf: {llmzoo name: hf name} of the adapted modules."""
    leaves = {h.rsplit(".", 1)[-1] for h in hf.values()}
    same_leaf = set()
    for name, module in model.named_modules():
        if (is_linear(module) or name in hf) and name.rsplit(".", 1)[-1] != "lm_head":
            try:
                path = names.to_hf(name)
            except LlmzooError:
                continue
            if path.rsplit(".", 1)[-1] in leaves:
                same_leaf.add(path)
    return sorted(leaves) if same_leaf == set(hf.values()) else sorted(hf.values())


def check_no_options(cfg: dict[str, Any], defaults: dict[str, Any], where: str) -> None:
    """Refuse peft options llmzoo does not implement (loading them at their default computes something else)."""
    for field, default in defaults.items():
        if cfg.get(field, default) not in (default, [], {}) and not (field == "bias" and cfg[field] is None):
            raise LlmzooError(f"{where}: {field}={cfg[field]!r} is not supported by llmzoo (only {default!r})")


def module_count(shapes: dict[str, Any], marker: str) -> int:
    """How many modules the tensor keys name (the part before `marker`, e.g. ".lora_")."""
    return len({k.rsplit(marker, 1)[0] for k in shapes if marker in k})
