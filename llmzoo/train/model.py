"""The model a recipe describes: its ModelConfig, and the training-time wrappers
(activation checkpointing, torch.compile) that leave parameter names unchanged."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError


def resolve_model_config(spec: Any, *, vocab_size: int, eos_id: int | None, name: str) -> ModelConfig:
    """A zoo name or a dict of ModelConfig fields (optionally `from: zoo-name`) as a ModelConfig.
    Without an explicit vocab_size the dataset's is used, so a recipe works with any tokenizer."""
    if isinstance(spec, str):
        spec = {"from": spec}
    fields = dict(spec)
    base_name = fields.pop("from", None)
    if base_name is not None:
        from llmzoo.models.zoo import get_config

        base = get_config(str(base_name)).to_dict()
    else:
        base = {"name": name}
    fields.setdefault("vocab_size", vocab_size)
    if eos_id is not None and "eos_token_id" not in fields and base_name is None:
        fields["eos_token_id"] = eos_id
    if fields.get("logit_scale") is not None and "logit_scale_rsqrt_d" not in fields:
        # the recipe's own number replaces the base's rule (T5: d_model**-0.5), rather than contradicting it
        fields["logit_scale_rsqrt_d"] = False
    base.update(fields)
    config = ModelConfig.from_dict(base)
    if config.vocab_size < vocab_size:
        raise ConfigError(f"model vocab_size {config.vocab_size} is smaller than the dataset's vocabulary "
                          f"({vocab_size} ids); raise model.vocab_size or omit it")
    return config


def enable_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in the backward pass instead of storing them
    (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"). The block's forward is
    wrapped in place, so parameter names (and checkpoints) do not change."""
    from torch.utils.checkpoint import checkpoint

    layers = getattr(model, "layers", None)
    if layers is None:
        raise ConfigError(f"activation_checkpointing needs a model with .layers; {type(model).__name__} has none")
    for block in layers:
        forward = block.forward

        @functools.wraps(forward)
        def checkpointed(*args, _forward=forward, **kwargs):
            if not torch.is_grad_enabled():
                return _forward(*args, **kwargs)
            return checkpoint(_forward, *args, use_reentrant=False, **kwargs)

        block.forward = checkpointed


def set_fused_projections(model: nn.Module, enabled: bool) -> None:
    """Run q/k/v and gate/up as one GEMM each (llmzoo.nn.fused); parameters and names unchanged."""
    for module in model.modules():
        if hasattr(module, "fuse_projections"):
            module.fuse_projections = enabled


# By default inductor drops a round trip to bf16 inside a fused kernel (x.to(bf16).float() becomes x),
# so a compiled bf16-autocast step trains on less-rounded values than the same step run eagerly
# (measured on a small LLaMA: loss off by 1e-5, weight gradients by ~1% and no longer bf16 values).
# Keeping the casts makes `compile: true` a speed switch only: same loss, gradients equal up to
# summation order.
COMPILE_OPTIONS = {"emulate_precision_casts": True}


def compile_blocks(model: nn.Module) -> None:
    """torch.compile each block in place (names unchanged; one compiled graph reused by all layers),
    keeping the precision casts autocast asks for (COMPILE_OPTIONS)."""
    layers = getattr(model, "layers", None)
    targets = list(layers) if layers is not None else [model]
    for block in targets:
        block.compile(options=COMPILE_OPTIONS)


def forward_kwargs(model: nn.Module) -> set[str]:
    """Keyword arguments the model's forward accepts (batch keys outside this set are not model inputs)."""
    import inspect

    return set(inspect.signature(model.forward).parameters)
