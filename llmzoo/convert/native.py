"""llmzoo's own checkpoint directory, for models that no transformers layout expresses (GLM's 2D
positions, ELECTRA's pretraining pair, SpanBERT's boundary head, XLM's language embeddings, zoo
families without an HF class).

It is the "llmzoo directory" the HF export already writes, without the HF part:

    config.json          {"model_type": "llmzoo", "llmzoo_format": 1, "model": KIND, "options": {...}}
    llmzoo_config.json   the ModelConfig (as beside every HF export)
    model.safetensors    the model's own state dict, llmzoo parameter names, each tied tensor once

`model_type: "llmzoo"` makes transformers refuse the directory by name instead of misreading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.checkpoint import read_safetensors_dir
from llmzoo.config import ModelConfig
from llmzoo.convert.native_kinds import Kind, kind_named, kind_of
from llmzoo.errors import CheckpointError

MODEL_TYPE = "llmzoo"
FORMAT_VERSION = 1


def is_native(hf_config: dict[str, Any]) -> bool:
    return hf_config.get("model_type") == MODEL_TYPE


def native_config(model: nn.Module) -> dict[str, Any]:
    """config.json of `model` in llmzoo's format; raises if llmzoo could not rebuild the model from it."""
    kind = kind_of(model)
    options = kind.options(model)
    check_rebuilds(model, kind, options)
    return {"model_type": MODEL_TYPE, "llmzoo_format": FORMAT_VERSION, "model": kind.name, "options": options,
            "torch_dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}


def check_rebuilds(model: nn.Module, kind: Kind, options: dict[str, Any]) -> None:
    """The kind rebuilt from config + options has exactly this model's tensors (a LoRA-wrapped or
    hand-modified model would not, and would load wrong)."""
    with torch.device("meta"):
        rebuilt = kind.build(model.config, options)
    want = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        raise CheckpointError(f"cannot save this {type(model).__name__}: llmzoo could not rebuild it from its config "
                              f"(tensor {diff[0]!r} differs from what {kind.name!r} has)")


def unique_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with each shared tensor (tied embeddings, ELECTRA's shared tables) once:
    the loader's freshly built model re-ties them."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        ptr = tensor.data_ptr()
        if tensor.numel() and ptr in seen:
            continue
        seen.add(ptr)
        out[key] = tensor
    return out


def read_native(directory: Path, hf_config: dict[str, Any], config: ModelConfig | None,
                dtype: torch.dtype | None) -> nn.Module:
    """The model of an llmzoo-format directory, its tied tensors tied as when it was saved."""
    version = hf_config.get("llmzoo_format")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{directory} is llmzoo format version {version!r}; this llmzoo reads version "
                              f"{FORMAT_VERSION}")
    if config is None:
        raise CheckpointError(f"{directory} lacks llmzoo_config.json, which holds the model's configuration")
    kind = kind_named(hf_config.get("model"))
    model = kind.build(config, dict(hf_config.get("options") or {}))
    state = read_safetensors_dir(directory)
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{directory}/model.safetensors has tensor {unexpected[0]!r}, which a {kind.name!r} "
                              f"model of this config does not have")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"tensor {key} has shape {tuple(tensor.shape)} but the config implies "
                                  f"{tuple(expected[key].shape)}")
    loaded = {expected[k].data_ptr() for k in state}
    missing = [k for k, v in expected.items() if k not in state and not (v.numel() and v.data_ptr() in loaded)]
    if missing:
        raise CheckpointError(f"{directory}/model.safetensors lacks {len(missing)} tensor(s), e.g. {missing[0]!r}")
    model.load_state_dict(state, strict=False)  # the rest are aliases of loaded tensors
    return model.to(dtype or torch.float32).eval()
