"""LLaMA-Pro block expansion (llmzoo/peft/block_expansion.py) as the registered PEFT method "llama_pro".

    llmzoo.peft.apply(model, "llama_pro", every=2)     # or after=[3, 7]
    llmzoo.peft.save_adapter(model, "adapter/")        # the new blocks only, under llmzoo's names
    model = llmzoo.load(base, adapter="adapter/")      # the base expanded again, the blocks filled in
    llmzoo.peft.merge(model)                           # a plain model with n_layers + k blocks

peft has no such method, so the adapter directory says "llmzoo_method": "llama_pro" and keeps the
tensor names of the expanded llmzoo model ("layers.2.self_attn.q_proj.weight").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.block_expansion import ExpandedBlock, expand_blocks, expanded_layers, fold_expansion
from llmzoo.peft.methods import Method, register

OPTIONS = ("every", "after")


def apply_llama_pro(model: nn.Module, **options: Any) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown llama_pro option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    after = options.get("after")
    expand_blocks(model, int(options.get("every", 1)) if after is None else 1,
                  after=list(after) if after is not None else None)


def source_blocks(model: nn.Module) -> list[int]:
    """The base block each expanded block follows (its index in the base stack)."""
    return [i - k - 1 for k, i in enumerate(expanded_layers(model))]


def save_llama_pro(model: nn.Module, names) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {f"layers.{i}.{key}": value for i in expanded_layers(model)
               for key, value in model.layers[i].state_dict().items()}
    return tensors, {"after": source_blocks(model), "base_n_layers": model.config.n_layers - len(expanded_layers(model))}


def load_llama_pro(model: nn.Module, config: dict[str, Any], tensors: dict[str, torch.Tensor], names, where: str) -> None:
    base_layers = config.get("base_n_layers")
    if base_layers != model.config.n_layers:
        raise LlmzooError(f"{where}: this llama_pro adapter expands a base of {base_layers} blocks; "
                          f"this model has {model.config.n_layers}")
    expand_blocks(model, after=list(config["after"]))
    expected = {f"layers.{i}.{key}": p for i in expanded_layers(model) for key, p in model.layers[i].state_dict().items()}
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise LlmzooError(f"{where}: adapter tensors do not match the expanded blocks "
                          f"({'missing ' + missing[0] if missing else 'unexpected ' + extra[0]})")
    for key, target in expected.items():
        if tuple(tensors[key].shape) != tuple(target.shape):
            raise LlmzooError(f"{where}: {key} has shape {tuple(tensors[key].shape)}, this model's is {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(tensors[key])
    for i in expanded_layers(model):
        for p in model.layers[i].parameters():
            p.requires_grad_(True)


def describe_llama_pro(config: dict[str, Any], shapes: dict[str, Any]) -> dict[str, Any]:
    return {"base blocks": config.get("base_n_layers"), "new blocks after": config.get("after")}


register(Method(name="llama_pro", peft_type=None, module_types=(ExpandedBlock,), apply=apply_llama_pro,
                save=save_llama_pro, load=load_llama_pro, describe=describe_llama_pro, merge=fold_expansion,
                title="LLaMA-Pro block expansion"))
