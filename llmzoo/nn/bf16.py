"""bf16 matrix products on CPUs without bf16 hardware.

Under `torch.autocast("cpu", dtype=torch.bfloat16)` every linear layer runs a bf16 GEMM. CPUs
with AMX or AVX512-BF16 do that natively; on AVX2-only CPUs torch falls back to a generic kernel
that is 5-20x slower than its fp32 GEMM (measured here: ~8 vs ~65 GFLOP/s on one core), which
makes "mixed precision" a large slowdown. The same numbers come out of the fp32 GEMM: a product
of two bf16 values is exact in fp32, and bf16 GEMMs accumulate in fp32 anyway. So inside
`bf16_gemm_via_fp32()` F.linear rounds its operands to bf16, multiplies them with the fp32
kernel and rounds the result to bf16, exactly what autocast asks for, only the summation order
inside the GEMM may differ.

Attention gets the same treatment: torch's CPU flash-attention kernel in bf16 is ~10x slower than
in fp32 on these CPUs, above all its backward (measured: 39% of a bf16 training step against 6%
in fp32). Its inputs are rounded to bf16 as autocast would round them, so the fp32 kernel sees the
same operands; it keeps the probabilities in fp32 where the bf16 kernel rounds them before the
second product, and the output is rounded back to bf16.

The emulated product is a custom op (`llmzoo::bf16_linear`) with its own backward, whose GEMMs
are bf16 GEMMs emulated the same way (gradients rounded to bf16, then cast to each operand's
dtype, as autocast's backward does). Being one op keeps it intact under torch.compile: traced as
casts around an fp32 matmul, inductor would fold the casts back into the slow bf16 GEMM.
"""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F

from llmzoo.nn.counted_mode import CountedMode


def native_bf16_gemm() -> bool:
    """Whether this CPU has bf16 matrix instructions that oneDNN uses (AVX512-BF16, AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _bf16_values(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float()


@torch.library.custom_op("llmzoo::bf16_linear", mutates_args=())
def _bf16_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Returns the bf16 result and the rounded operands (fp32 holding bf16 values) for backward.
    with torch.autocast(x.device.type, enabled=False):
        x_r, weight_r = _bf16_values(x), _bf16_values(weight)
        out = F.linear(x_r, weight_r, None if bias is None else _bf16_values(bias))
    return out.to(torch.bfloat16), x_r, weight_r


@_bf16_linear.register_fake
def _(x, weight, bias):
    out = x.new_empty((*x.shape[:-1], weight.shape[0]), dtype=torch.bfloat16)
    return out, torch.empty_like(x, dtype=torch.float32), torch.empty_like(weight, dtype=torch.float32)


def _bf16_linear_setup(ctx, inputs, output) -> None:
    x, weight, bias = inputs
    ctx.save_for_backward(output[1], output[2])
    ctx.dtypes = x.dtype, weight.dtype, None if bias is None else bias.dtype


def _bf16_linear_backward(ctx, grad, _grad_x_r, _grad_weight_r):
    # The backward GEMMs of a bf16 linear are bf16 GEMMs too (bf16 operands and results), each
    # result cast back to its operand's dtype (autocast's cast backward): d_x = g W, d_W = g^T x.
    # (torch.compile traces this under the forward's autocast state: keep it off.)
    x_r, weight_r = ctx.saved_tensors
    x_dtype, weight_dtype, bias_dtype = ctx.dtypes
    d_x = d_weight = d_bias = None
    with torch.autocast(x_r.device.type, enabled=False):
        grad = grad.to(torch.bfloat16).float()
        grad_2d = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            d_x = (grad @ weight_r).to(torch.bfloat16).to(x_dtype)
        if ctx.needs_input_grad[1]:
            d_weight = (grad_2d.t() @ x_r.reshape(-1, x_r.shape[-1])).to(torch.bfloat16).to(weight_dtype)
        if bias_dtype is not None and ctx.needs_input_grad[2]:
            d_bias = grad_2d.sum(0).to(torch.bfloat16).to(bias_dtype)
    return d_x, d_weight, d_bias


_bf16_linear.register_autograd(_bf16_linear_backward, setup_context=_bf16_linear_setup)


def bf16_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear as a bf16 GEMM computes it (bf16 operands, fp32 accumulation, bf16 result), run
    by the fp32 kernel. A custom op so that torch.compile keeps it whole: traced as casts around
    an fp32 product, inductor folds them back into the slow bf16 GEMM. The rounded operands are
    kept for the backward GEMMs rather than rounded again."""
    return _bf16_linear(x, weight, bias)[0]


def _autocast_bf16() -> bool:
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def bf16_gemm_emulated() -> bool:
    """Whether this thread is inside `bf16_gemm_via_fp32()`: kernels that run their own GEMMs
    (llmzoo.nn.linear_cross_entropy) follow the same policy."""
    return _Bf16ViaFp32.active()


class _Bf16ViaFp32(CountedMode):
    _depth = threading.local()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and _autocast_bf16():
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            return bf16_linear(x, weight, bias)
        if func is F.scaled_dot_product_attention and _autocast_bf16():
            q, k, v = (_bf16_values(t) for t in args[:3])  # what autocast would hand the bf16 kernel
            rest = list(args[3:])
            if rest and rest[0] is not None and rest[0].is_floating_point():
                rest[0] = rest[0].float()  # attn_mask given by position
            mask = kwargs.get("attn_mask")
            if mask is not None and mask.is_floating_point():
                kwargs["attn_mask"] = mask.float()
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q, k, v, *rest, **kwargs)
            return out.to(torch.bfloat16)
        return func(*args, **kwargs)


def bf16_gemm_via_fp32(enabled: bool = True):
    """Context for the forward pass (autograd then runs the backward GEMMs in fp32 as well)."""
    return _Bf16ViaFp32() if enabled else contextlib.nullcontext()


def use_bf16_emulation(setting: str) -> bool:
    """setting: 'auto' (emulate when the CPU lacks bf16 GEMMs), 'fp32' (always), 'native' (never)."""
    if setting == "native":
        return False
    return setting == "fp32" or not native_bf16_gemm()
