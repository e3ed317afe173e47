"""Apply an adapter directory (peft's format, written by peft or by llmzoo) to a built model:
the config names the method (llmzoo.peft.methods), whose handler wraps the modules and fills them."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.methods import method_of
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.peft_format import read_adapter_tensors, read_config_and_method


def load_adapter(model: nn.Module, directory: str | Path) -> nn.Module:
    """Add the adapter in `directory` to `model` and load its tensors (in place); freezes the base."""
    cfg, method = read_config_and_method(directory)
    state = read_adapter_tensors(directory)
    present = method_of(model)
    if present is not None:
        raise LlmzooError(f"this model already has a {present.display} adapter; llmzoo.peft.merge(model) it first")
    for p in model.parameters():
        p.requires_grad_(False)
    method.load(model, cfg, state, ModuleNames(model.config), str(directory))
    return model
