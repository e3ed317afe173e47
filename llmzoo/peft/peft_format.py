"""peft's on-disk adapter format: adapter_config.json + adapter_model.safetensors.

Tensors are named as peft names them, by the module's path in the transformers model:
`base_model.model.<hf module>.lora_A.weight`, `.lora_B.weight`, and DoRA's `.lora_magnitude_vector`
(llmzoo.peft.names maps those paths to llmzoo's). Only safetensors is read: a pickle
(adapter_model.bin) can run code when loaded. Reading and inspecting live here; applying an adapter
in llmzoo/peft/load.py, writing one in llmzoo/peft/save.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from llmzoo.errors import LlmzooError

CONFIG, WEIGHTS, PICKLE = "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"
PREFIX = "base_model.model."
SUFFIXES = ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector")
# peft options llmzoo does not implement: loading them as if at their default would compute something else
DEFAULTS = {"bias": "none", "fan_in_fan_out": False, "lora_bias": False, "modules_to_save": None,
            "layer_replication": None, "use_qalora": False, "target_parameters": None,
            "trainable_token_indices": None, "alora_invocation_tokens": None, "use_bdlora": None}
TASK_TYPES = {"decoder": "CAUSAL_LM", "encoder_decoder": "SEQ_2_SEQ_LM", "seq_cls": "SEQ_CLS",
              "token_cls": "TOKEN_CLS", "qa": "QUESTION_ANS", "none": "FEATURE_EXTRACTION"}


def read_adapter_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG
    if not path.is_file():
        raise LlmzooError(f"{directory} is not a peft adapter directory: it has no {CONFIG}")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LlmzooError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})") from None
    kind = cfg.get("peft_type")
    if kind != "LORA":
        raise LlmzooError(f"{directory} holds a peft {kind} adapter; llmzoo loads LORA adapters (LoRA, rsLoRA, DoRA) only")
    for field, default in DEFAULTS.items():
        if cfg.get(field, default) not in (default, [], {}) and not (field == "bias" and cfg[field] is None):
            raise LlmzooError(f"{path}: {field}={cfg[field]!r} is not supported by llmzoo (only {default!r})")
    return cfg


def read_adapter_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / WEIGHTS).is_file():
        if (directory / PICKLE).exists():
            raise LlmzooError(f"{directory / PICKLE} is a pickle, which can run code when loaded; llmzoo reads "
                              f"{WEIGHTS} only (re-save the adapter with peft's safe_serialization=True)")
        raise LlmzooError(f"{directory} has no {WEIGHTS}")
    return load_file(str(directory / WEIGHTS))


def describe_adapter(directory: str | Path) -> dict[str, Any]:
    """What `llmzoo adapter info` prints, read from the config and the safetensors header alone."""
    from safetensors import safe_open

    cfg = read_adapter_config(directory)
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        read_adapter_tensors(directory)  # raises the one-line reason (missing, or a pickle)
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    modules = {k[len(PREFIX):].rsplit(".lora_", 1)[0] for k in shapes if k.startswith(PREFIX)}
    method = "DoRA" if cfg.get("use_dora") else "rsLoRA" if cfg.get("use_rslora") else "LoRA"
    targets = cfg.get("target_modules")
    return {
        "method": method, "r": cfg.get("r"), "lora_alpha": cfg.get("lora_alpha"),
        "lora_dropout": cfg.get("lora_dropout", 0.0),
        "target_modules": targets if isinstance(targets, str) else sorted(targets or []),
        "rank_pattern": cfg.get("rank_pattern") or {}, "alpha_pattern": cfg.get("alpha_pattern") or {},
        "modules": len(modules), "trainable_parameters": sum(_numel(s) for s in shapes.values()),
        "base_model_name_or_path": cfg.get("base_model_name_or_path"), "task_type": cfg.get("task_type"),
    }


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
