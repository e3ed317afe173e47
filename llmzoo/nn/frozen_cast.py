"""Frozen weights cast to autocast's dtype once, not at every forward pass.

Under `torch.autocast(dtype=torch.bfloat16)` every F.linear casts its fp32 weight to bf16, and
autocast caches that cast only for leaf tensors that require grad. A PEFT fine-tune freezes the
base, so every step re-casts every base weight (measured on SmolLM2-135M LoRA: most of the ~6% of
a CPU step spent in copies). Inside `frozen_weight_casts()` a frozen floating-point weight given
to F.linear is replaced by a bf16 copy kept beside it (`cast_frozen`), made again only when the
weight changes (an in-place update bumps its version: a merge, a load). The copy holds exactly
the values autocast's own cast would give, so results are unchanged to the bit; the price is
the copy's memory (half the frozen weights' fp32 size), held as long as the weight lives.
Kernels that cast weights themselves (the fused q/k/v and gate/up GEMMs, the chunked head) ask
`frozen_casts_active()` and use `cast_frozen` / `cast_frozen_concatenation` only inside the context.
"""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F

from llmzoo.nn.counted_mode import CountedMode

_ATTRIBUTE = "_llmzoo_frozen_cast"  # (key, copy) kept on the weight tensor itself


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def cast_frozen(weight: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`weight` in `dtype` (default: the current autocast dtype of its device), cached while the
    weight is frozen and unchanged; trainable or non-float weights come back as they are."""
    if dtype is None:
        dtype = _autocast_dtype(weight.device.type)
    if (dtype is None or weight.requires_grad or not weight.is_floating_point() or weight.dtype == dtype
            or torch.compiler.is_compiling() or type(weight) not in (torch.Tensor, torch.nn.Parameter)):
        return weight
    key = (weight.data_ptr(), weight._version, dtype, weight.shape)
    cached = getattr(weight, _ATTRIBUTE, None)
    if cached is None or cached[0] != key:
        cached = (key, weight.detach().to(dtype))
        setattr(weight, _ATTRIBUTE, cached)
    return cached[1]


def cast_frozen_concatenation(weights: list[torch.Tensor], owner: torch.nn.Module,
                              dtype: torch.dtype) -> torch.Tensor | None:
    """torch.cat(weights) in `dtype`, cached on `owner` while every weight is frozen and unchanged;
    None where one of them trains (the caller concatenates as usual)."""
    if torch.compiler.is_compiling() or any(w.requires_grad for w in weights):
        return None
    key = (dtype, *((w.data_ptr(), w._version, w.shape) for w in weights))
    cached = owner.__dict__.get(_ATTRIBUTE)
    if cached is None or cached[0] != key:
        cached = (key, torch.cat([w.detach() for w in weights]).to(dtype))
        owner.__dict__[_ATTRIBUTE] = cached
    return cached[1]


def frozen_casts_active() -> bool:
    """Whether this thread is inside `frozen_weight_casts()`."""
    return _FrozenWeightCasts.active()


class _FrozenWeightCasts(CountedMode):
    _depth = threading.local()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and len(args) >= 2 and isinstance(args[1], torch.Tensor):
            args = (args[0], cast_frozen(args[1]), *args[2:])
        return func(*args, **kwargs)


def frozen_weight_casts(enabled: bool = True):
    """Context for autocast forward passes: frozen F.linear weights use their cached casts."""
    return _FrozenWeightCasts() if enabled else contextlib.nullcontext()
