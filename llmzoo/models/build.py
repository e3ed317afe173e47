"""build_model(config): the one place that turns a ModelConfig into a module, for every family."""

from __future__ import annotations

import contextlib
import importlib

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError

# arch -> "module:callable(config) -> nn.Module". Imported lazily so one arch's code
# never slows down or breaks another's.
BUILDERS: dict[str, str] = {
    "decoder": "llmzoo.models.decoder:DecoderLM",
    "encoder": "llmzoo.models.encoder:build_encoder",
    "encoder_decoder": "llmzoo.models.encoder_decoder:build_encoder_decoder",
    "clip": "llmzoo.models.clip:CLIPModel",  # two towers; config is a CLIPConfig (llmzoo.models.clip_config)
    "ernie3": "llmzoo.models.ernie3:Ernie3",  # backbone + NLU/NLG modules; an Ernie3Config (llmzoo.models.ernie3_config)
}


def build_model(config: ModelConfig, *, device: str | torch.device | None = None,
                dtype: torch.dtype | None = None) -> nn.Module:
    """Instantiate the model a config describes (random init; use `llmzoo.load` for weights).
    device='meta' builds without allocating memory (parameter counts of 100B+ configs)."""
    target = BUILDERS.get(config.arch)
    if config.position_2d:  # GLM: the decoder plus a second (intra-span) position table
        target = "llmzoo.models.glm:GLMModel"
    if target is None:
        raise ConfigError(f"no builder for arch {config.arch!r}")
    module_name, attr = target.split(":")
    builder = getattr(importlib.import_module(module_name), attr)
    with torch.device(device) if device is not None else _nullcontext(), \
            _no_init() if str(device) == "meta" else _nullcontext():
        model = builder(config)
    if device != "meta":
        init_weights(model, config)
    if dtype is not None:
        model = model.to(dtype)
    return model


# torch.nn.init's in-place initialisers, which module constructors call (nn.Linear.reset_parameters, ...)
_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "xavier_uniform_",
                 "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


@contextlib.contextmanager
def _no_init():
    """Constructors' random init skipped: on the meta device there are no values to fill, yet each
    meta initialiser runs through torch's reference implementations (switch-c-2048's 61k experts:
    a meta build took 24 s, 10 s without them)."""
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


def init_weights(model: nn.Module, config: ModelConfig, std: float = 0.02) -> None:
    """GPT-2 style init: N(0, 0.02) for linear and embedding weights, zero biases, unit norms."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
    # DeepNet's Xavier init with gain beta (llmzoo.nn.deepnorm); composite configs (CLIPConfig) have no such field
    if getattr(config, "deepnorm", None) is not None:
        from llmzoo.nn.deepnorm import deepnorm_init_

        deepnorm_init_(model, config)


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
