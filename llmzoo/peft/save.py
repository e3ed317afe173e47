"""Write a model's adapter as an adapter directory: peft's format (under transformers' module names,
so peft's PeftModel.from_pretrained(base, directory) rebuilds the same adapter) for the methods peft
has, the same layout with "llmzoo_method" in place of "peft_type" for the methods it lacks."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from llmzoo.checkpoint import write_safetensors
from llmzoo.errors import LlmzooError
from llmzoo.peft.methods import method_of
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.peft_format import CONFIG, TASK_TYPES, WEIGHTS


def save_adapter(model: nn.Module, out_dir: str | Path, base_model_name_or_path: str | None = None) -> Path:
    """Write `model`'s adapter (adapter_config.json + adapter_model.safetensors) to `out_dir`."""
    method = method_of(model)
    if method is None:
        raise LlmzooError("this model has no adapter to save (no LoRA adapter or other PEFT method); "
                          "llmzoo.peft.apply(model, 'lora', ...) first")
    tensors, fields = method.save(model, ModuleNames(model.config))
    c = model.config
    kind = {"peft_type": method.peft_type} if method.peft_type else {"llmzoo_method": method.name}
    config = {**kind, "task_type": TASK_TYPES.get(c.arch) or TASK_TYPES.get(c.head),
              "base_model_name_or_path": base_model_name_or_path or getattr(model, "source", None) or c.name,
              **fields, "inference_mode": True}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors({k: v.detach() for k, v in tensors.items()}, out / WEIGHTS)
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return out
