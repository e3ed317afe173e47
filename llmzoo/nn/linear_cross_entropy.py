"""The language-model head and its cross-entropy in one pass, without the (tokens x vocab) logits.

A training step of a small model spends a surprising share of its time around the logits, not
in the head's GEMM: the logits are written, cast to bf16 and back, log-softmaxed, a zero-filled
gradient of the same size is scattered into and run through the softmax backward and the casts
again; at vocabulary 8k and 2k tokens that is ten passes over 64 MB, ~15% of a CPU step, and at
vocabulary 128k the logits alone outgrow memory. Computing the loss chunk by chunk of rows, with
the gradient of each chunk formed right away while its logits are still in cache (the approach of
Liger-Kernel's fused linear cross-entropy, Hsu et al. 2024, and of "Cut Your Losses", Wijmans et
al. 2024), leaves the head's three GEMMs (logits, d_hidden, d_weight) and one pass over each chunk.

The gradients are computed in the forward pass and kept (d_hidden is tokens x d_model, d_weight
the head's size); backward scales them by the incoming gradient. Under autocast the chunk follows
autocast's numerics exactly: bf16 operands, bf16 logits (then fp32 for the softmax, as the
unfused loss does), bf16 gradients into the GEMMs; d_weight is summed over chunks in fp32 and
rounded once, as a single bf16 GEMM over all rows would be.
"""

from __future__ import annotations

import torch

from llmzoo.nn.bf16 import bf16_gemm_emulated
from llmzoo.nn.frozen_cast import cast_frozen, frozen_casts_active

IGNORE_INDEX = -100  # the label value PyTorch and transformers skip
_CHUNK_BYTES = 8 << 20  # fp32 logits per chunk: large enough for efficient GEMMs, small enough for cache


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    ignore_index: int = IGNORE_INDEX,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Mean of cross_entropy(hidden @ weight.T + bias (times scale), targets) over targets != ignore_index.

    hidden (..., d), weight (V, d), targets (...) of the same leading shape. Equal to
    `F.cross_entropy(F.linear(hidden, weight, bias).float(), targets)` up to summation order,
    in fp32 or under autocast."""
    device = hidden.device.type
    autocast = torch.is_autocast_enabled(device)
    compute = torch.get_autocast_dtype(device) if autocast else weight.dtype
    emulate = compute == torch.bfloat16 and hidden.device.type == "cpu" and bf16_gemm_emulated()
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    if flat_targets.numel() != flat_hidden.shape[0]:
        raise ValueError(f"targets hold {flat_targets.numel()} positions but hidden states {flat_hidden.shape[0]}")
    rows = chunk_rows or max(1, _CHUNK_BYTES // (4 * weight.shape[0]))
    if autocast and frozen_casts_active():  # a frozen head (tied to frozen embeddings under PEFT): cast once
        weight = cast_frozen(weight, compute)
    return _LinearCrossEntropy.apply(flat_hidden, weight, bias, flat_targets, scale, ignore_index, compute, emulate, rows)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, scale, ignore_index, compute, emulate, chunk_rows):
        wants_grad = any(ctx.needs_input_grad[:3])
        # A frozen head (LoRA and the other PEFT methods freeze it) needs no d_weight: its GEMM and the
        # per-chunk fp32 accumulation over the whole (vocab x d) weight were half the step's head time.
        weight_grad = ctx.needs_input_grad[1]
        with torch.autocast(hidden.device.type, enabled=False):
            loss, grads = _loss_and_grads(hidden, weight, bias, targets, scale, ignore_index, compute, emulate,
                                          chunk_rows, wants_grad, weight_grad)
        ctx.save_for_backward(*grads)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        d_hidden, d_weight, d_bias = ctx.saved_tensors
        return (d_hidden * grad_loss.to(d_hidden.dtype),
                d_weight * grad_loss.to(d_weight.dtype) if ctx.needs_input_grad[1] else None,
                d_bias * grad_loss.to(d_bias.dtype) if ctx.needs_input_grad[2] else None,
                None, None, None, None, None, None)


def _loss_and_grads(hidden, weight, bias, targets, scale, ignore_index, compute, emulate, chunk_rows, wants_grad,
                    weight_grad=True):
    # Operands as the GEMMs see them: rounded to the compute dtype (autocast's casts), held in
    # fp32 when bf16 products go through the fp32 kernel (llmzoo.nn.bf16).
    gemm_dtype = torch.float32 if emulate else compute
    h = hidden.to(compute).to(gemm_dtype)
    w = weight.to(compute).to(gemm_dtype)
    b = None if bias is None else bias.to(compute).to(gemm_dtype)
    valid = targets != ignore_index
    count = valid.sum()
    safe_targets = torch.where(valid, targets, 0)
    # Each row's share of the mean; 0/0 gives NaN for an all-ignored batch, as F.cross_entropy does.
    row_weight = valid.float() / count
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    d_hidden = torch.empty_like(hidden) if wants_grad else None
    d_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if wants_grad and weight_grad else None
    d_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if wants_grad and bias is not None else None
    for start in range(0, h.shape[0], chunk_rows):
        end = min(start + chunk_rows, h.shape[0])
        h_chunk, t_chunk = h[start:end], safe_targets[start:end]
        logits = (h_chunk @ w.t() if b is None else torch.addmm(b, h_chunk, w.t())).to(compute)
        if scale is not None:
            logits = logits * scale
        logits = logits.float()
        lse = torch.logsumexp(logits, dim=-1)
        picked = logits.gather(1, t_chunk[:, None]).squeeze(1)
        total += ((lse - picked) * row_weight[start:end]).sum()
        if not wants_grad:
            continue
        # d loss / d logits = (softmax - one_hot(target)) * row weight, computed in place.
        grad = logits.sub_(lse[:, None]).exp_()
        grad[torch.arange(end - start, device=grad.device), t_chunk] -= 1.0
        grad.mul_(row_weight[start:end, None])
        grad = grad.to(compute)  # the gradient reaching the (compute-dtype) logits
        if scale is not None:
            grad = grad * scale
        if d_bias is not None:
            d_bias += grad.float().sum(0)
        grad = grad.to(gemm_dtype)
        d_hidden[start:end] = (grad @ w).to(compute)
        if d_weight is None:
            continue
        if gemm_dtype == torch.float32:
            d_weight.addmm_(grad.t(), h_chunk)
        else:
            d_weight += grad.t() @ h_chunk
    if not wants_grad:
        return total, ()
    # Round d_weight as one GEMM over all rows would have (then back to the parameter's dtype).
    d_weight = d_weight.to(compute).to(weight.dtype) if d_weight is not None else torch.zeros(())
    d_bias = d_bias.to(compute).to(bias.dtype) if d_bias is not None else torch.zeros(())
    return total, (d_hidden, d_weight, d_bias)
