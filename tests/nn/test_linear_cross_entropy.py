"""The chunked LM-head + cross-entropy equals the unfused head and F.cross_entropy."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model
from llmzoo.nn.bf16 import bf16_gemm_via_fp32
from llmzoo.nn.linear_cross_entropy import linear_cross_entropy


def _inputs(bias: bool):
    torch.manual_seed(0)
    hidden = torch.randn(2, 75, 32, requires_grad=True)
    weight = (torch.randn(300, 32) * 0.3).requires_grad_()
    b = torch.randn(300).requires_grad_() if bias else None
    targets = torch.randint(0, 300, (2, 75))
    targets[:, ::7] = -100  # ignored positions
    return hidden, weight, b, targets


def _reference(hidden, weight, bias, targets, scale):
    logits = F.linear(hidden, weight, bias)
    if scale is not None:
        logits = logits * scale
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _grads(loss, tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("bias,scale", [(False, None), (True, 0.5)])
@pytest.mark.parametrize("chunk_rows", [16, 150, 1000])  # chunk edges inside, at and beyond the rows
def test_equals_unfused_in_fp32(bias, scale, chunk_rows):
    hidden, weight, b, targets = _inputs(bias)
    reference = _reference(hidden, weight, b, targets, scale)
    fused = linear_cross_entropy(hidden, weight, targets, bias=b, scale=scale, chunk_rows=chunk_rows)
    assert torch.allclose(fused, reference, rtol=1e-6, atol=1e-6)
    for got, want in zip(_grads(2.5 * fused, (hidden, weight, b)), _grads(2.5 * reference, (hidden, weight, b))):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("emulate", [False, True])
def test_follows_bf16_autocast_numerics(emulate):
    """Under autocast the chunks round operands, logits and gradients to bf16 as the unfused head
    does: results agree up to bf16 rounding of the summation order (a few bf16 ulps)."""
    hidden, weight, b, targets = _inputs(True)

    def context():
        stack = contextlib.ExitStack()
        stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        stack.enter_context(bf16_gemm_via_fp32(emulate))
        return stack

    with context():
        reference = _reference(hidden, weight, b, targets, None)
    with context():
        fused = linear_cross_entropy(hidden, weight, targets, bias=b, chunk_rows=40)
    assert fused.dtype == torch.float32
    assert torch.allclose(fused, reference, rtol=1e-4)
    for got, want in zip(_grads(fused, (hidden, weight, b)), _grads(reference, (hidden, weight, b))):
        assert got.dtype == want.dtype
        assert (got - want).abs().max() <= 2 * 2.0**-8 * want.abs().max()
    # and not the fp32 result: the rounding really happens
    fp32 = _reference(hidden, weight, b, targets, None)
    assert not torch.equal(fused, fp32)


def test_all_ignored_is_nan_like_cross_entropy_and_no_grad_path():
    hidden, weight, _, targets = _inputs(False)
    ignored = torch.full_like(targets, -100)
    assert torch.isnan(linear_cross_entropy(hidden, weight, ignored))
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, targets)
    assert torch.allclose(loss, _reference(hidden, weight, None, targets, None).detach(), rtol=1e-6)


def test_model_targets_give_the_loss_of_its_logits():
    config = ModelConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=32,
                         tie_embeddings=True, logit_scale=0.7)
    torch.manual_seed(0)
    model = build_model(config)
    ids = torch.randint(0, 97, (3, 20))
    targets = torch.roll(ids, -1, dims=1)
    targets[:, -1] = -100
    unfused = F.cross_entropy(model(ids).logits.reshape(-1, 97), targets.reshape(-1))
    out = model(ids, targets=targets)
    assert out.get("logits") is None
    assert torch.allclose(out.loss, unfused, rtol=1e-6)
    params = list(model.parameters())
    for got, want in zip(torch.autograd.grad(out.loss, params), torch.autograd.grad(unfused, params)):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)


def test_frozen_head_gets_no_weight_gradient():
    """A frozen head (as PEFT leaves it) skips d_weight; d_hidden still equals the unfused one."""
    hidden, weight, b, targets = _inputs(True)
    weight.requires_grad_(False)
    b.requires_grad_(False)
    fused = linear_cross_entropy(hidden, weight, targets, bias=b, chunk_rows=16)
    reference = _reference(hidden, weight, b, targets, None)
    fused.backward()
    (want,) = torch.autograd.grad(reference, [hidden])
    assert weight.grad is None and b.grad is None
    assert torch.allclose(hidden.grad, want, rtol=1e-5, atol=1e-7)
