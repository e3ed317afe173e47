"""Write a model's LoRA adapter in peft's format, under transformers' module names, so that
peft's PeftModel.from_pretrained(base, directory) rebuilds the same adapter."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.checkpoint import write_safetensors
from llmzoo.errors import LlmzooError
from llmzoo.peft.lora import LoraLinear
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.peft_format import CONFIG, PREFIX, TASK_TYPES, WEIGHTS
from llmzoo.peft.transform import lora_modules


def save_adapter(model: nn.Module, out_dir: str | Path, base_model_name_or_path: str | None = None) -> Path:
    """Write `model`'s LoRA adapter in peft's format (peft's PeftModel.from_pretrained loads it)."""
    modules = lora_modules(model)
    if not modules:
        raise LlmzooError("this model has no LoRA adapter to save; llmzoo.peft.apply(model, 'lora', ...) first")
    names = ModuleNames(model.config)
    hf = {name: names.to_hf(name) for name in modules}
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        prefix = PREFIX + hf[name]
        tensors[prefix + ".lora_A.weight"] = module.lora_A.weight
        tensors[prefix + ".lora_B.weight"] = module.lora_B.weight
        if module.lora_magnitude_vector is not None:
            tensors[prefix + ".lora_magnitude_vector"] = module.lora_magnitude_vector
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(tensors, out / WEIGHTS)
    config = _config(model, modules, hf, names, base_model_name_or_path)
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return out


def _config(model: nn.Module, modules: dict[str, LoraLinear], hf: dict[str, str], names: ModuleNames,
            base: str | None) -> dict[str, Any]:
    specs = {name: m.spec for name, m in modules.items()}
    shared = {(s.dropout, s.use_rslora, s.use_dora) for s in specs.values()}
    if len(shared) > 1:
        raise LlmzooError("peft's format has one dropout/rsLoRA/DoRA setting per adapter; these modules differ")
    dropout, rslora, dora = shared.pop()
    r = Counter(s.r for s in specs.values()).most_common(1)[0][0]
    alpha = Counter(s.alpha for s in specs.values()).most_common(1)[0][0]
    c = model.config
    return {
        "peft_type": "LORA", "task_type": TASK_TYPES.get(c.arch) or TASK_TYPES.get(c.head),
        "base_model_name_or_path": base or getattr(model, "source", None) or c.name,
        "r": r, "lora_alpha": alpha, "lora_dropout": dropout, "use_rslora": rslora, "use_dora": dora,
        "target_modules": _targets(model, hf, names),
        "rank_pattern": {re.escape(hf[n]): s.r for n, s in specs.items() if s.r != r},
        "alpha_pattern": {re.escape(hf[n]): s.alpha for n, s in specs.items() if s.alpha != alpha},
        "bias": "none", "fan_in_fan_out": False, "modules_to_save": None, "init_lora_weights": True,
        "inference_mode": True,
    }


def _targets(model: nn.Module, hf: dict[str, str], names: ModuleNames) -> list[str]:
    """Leaf names ("q_proj") when they select exactly the adapted modules, else full paths,
    so peft wraps the same modules llmzoo did."""
    leaves = {h.rsplit(".", 1)[-1] for h in hf.values()}
    same_leaf = set()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, LoraLinear)) and name.rsplit(".", 1)[-1] != "lm_head":
            try:
                path = names.to_hf(name)
            except LlmzooError:
                continue
            if path.rsplit(".", 1)[-1] in leaves:
                same_leaf.add(path)
    return sorted(leaves) if same_leaf == set(hf.values()) else sorted(hf.values())
