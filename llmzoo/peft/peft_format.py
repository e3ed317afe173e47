"""peft's adapter directory: adapter_config.json + adapter_model.safetensors.

The config says which method (peft's "peft_type", or "llmzoo_method" for a method peft lacks, such
as llmzoo's bottleneck adapters) and its options; the tensors are keyed by the module's path inside
the transformers model: `base_model.model.<hf module>.<method's tensor>` (llmzoo.peft.names maps
those paths to llmzoo's). Only safetensors is read: a pickle (adapter_model.bin) can run code when
loaded. Reading and inspecting live here; applying an adapter in llmzoo/peft/load.py, writing one
in llmzoo/peft/save.py, each method's own fields in its registered handler (llmzoo.peft.methods).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from llmzoo.errors import LlmzooError
from llmzoo.peft.methods import Method, method_for_config

CONFIG, WEIGHTS, PICKLE = "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"
TASK_TYPES = {"decoder": "CAUSAL_LM", "encoder_decoder": "SEQ_2_SEQ_LM", "seq_cls": "SEQ_CLS",
              "token_cls": "TOKEN_CLS", "qa": "QUESTION_ANS", "none": "FEATURE_EXTRACTION"}


def read_adapter_config(directory: str | Path) -> dict[str, Any]:
    """The parsed adapter_config.json, once its method is one llmzoo loads."""
    return read_config_and_method(directory)[0]


def read_config_and_method(directory: str | Path) -> tuple[dict[str, Any], Method]:
    """The parsed adapter_config.json and the registered method it names (else a one-line error)."""
    directory = Path(directory)
    path = directory / CONFIG
    if not path.is_file():
        raise LlmzooError(f"{directory} is not a peft adapter directory: it has no {CONFIG}")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LlmzooError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(cfg, dict):
        raise LlmzooError(f"{path} is not a JSON object")
    return cfg, method_for_config(cfg, str(directory))


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

    cfg, method = read_config_and_method(directory)
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        read_adapter_tensors(directory)  # raises the one-line reason (missing, or a pickle)
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    targets = cfg.get("target_modules")
    info: dict[str, Any] = {"method": method.display}
    info.update(method.describe(cfg, shapes))
    info.setdefault("target_modules", targets if isinstance(targets, str) or targets is None else sorted(targets))
    info.update({
        "trainable_parameters": sum(_numel(s) for s in shapes.values()),
        "base_model_name_or_path": cfg.get("base_model_name_or_path"), "task_type": cfg.get("task_type"),
    })
    return info


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
