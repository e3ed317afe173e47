"""Training fast paths compute what the plain modules compute."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model
from llmzoo.nn.bf16 import bf16_gemm_via_fp32
from llmzoo.train.model import set_fused_projections


def test_fused_projections_match_separate_ones():
    config = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, qkv_bias=True,
                         max_seq_len=16)
    torch.manual_seed(0)
    model = build_model(config)
    ids = torch.randint(0, 50, (2, 12))
    plain_out = model(ids).logits
    plain_grads = torch.autograd.grad(plain_out.square().mean(), list(model.parameters()))
    set_fused_projections(model, True)
    fused_out = model(ids).logits
    fused_grads = torch.autograd.grad(fused_out.square().mean(), list(model.parameters()))
    torch.testing.assert_close(fused_out, plain_out)
    for a, b in zip(fused_grads, plain_grads):
        torch.testing.assert_close(a, b)
    assert set(dict(model.named_parameters())) == {n for n, _ in build_model(config).named_parameters()}


def test_bf16_gemm_through_fp32_rounds_like_a_bf16_gemm():
    """Products of bf16 values are exact in fp32 and bf16 GEMMs accumulate in fp32: the results
    agree with torch's bf16 kernel up to the summation order (at most one bf16 ulp apart)."""
    torch.manual_seed(0)
    x, w, b = torch.randn(64, 96), torch.randn(80, 96), torch.randn(80)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        native = F.linear(x, w, b)
        with bf16_gemm_via_fp32():
            emulated = F.linear(x, w, b)
    assert native.dtype == emulated.dtype == torch.bfloat16
    exact = F.linear(x.bfloat16().double(), w.bfloat16().double(), b.bfloat16().double())
    ulp = exact.abs().bfloat16().float() * 2.0**-7  # one bf16 step at each value's magnitude
    assert ((emulated.double() - exact).abs() <= ulp).all()
    assert ((emulated.float() - native.float()).abs() <= 2 * ulp).all()
    assert (emulated == native).float().mean() > 0.99
    with bf16_gemm_via_fp32():  # outside autocast nothing changes
        assert torch.equal(F.linear(x, w, b), F.linear(x, w, b)) and F.linear(x, w, b).dtype == torch.float32


def _one_ulp(t: torch.Tensor) -> torch.Tensor:
    return t.abs().bfloat16().float() * 2.0**-7


def test_bf16_gemm_through_fp32_has_bf16_gradients():
    """Backward of the emulated linear: gradients equal torch's native bf16 autocast backward up
    to summation order (within two bf16 steps), and carry the operands' dtypes."""
    torch.manual_seed(0)
    x = torch.randn(48, 96, requires_grad=True)
    w = torch.randn(80, 96, requires_grad=True)
    b = torch.randn(80, requires_grad=True)
    g = torch.randn(48, 80)
    grads = {}
    for emulate in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16), bf16_gemm_via_fp32(emulate):
            out = F.linear(x, w, b)
        grads[emulate] = torch.autograd.grad(out, (x, w, b), g)
    for native, emulated in zip(grads[False], grads[True]):
        assert emulated.dtype == native.dtype == torch.float32
        assert torch.equal(emulated, emulated.bfloat16().float())  # bf16 values, as autocast yields
        assert ((emulated - native).abs() <= 2 * _one_ulp(native) + 1e-30).all()


def test_attention_through_fp32_rounds_like_bf16_attention():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 16, 8, requires_grad=True) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        native = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        with bf16_gemm_via_fp32():
            emulated = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert native.dtype == emulated.dtype == torch.bfloat16
    exact = F.scaled_dot_product_attention(*(t.bfloat16().double() for t in (q, k, v)), is_causal=True)
    # the fp32 kernel is at least as close to exact attention on the bf16 inputs as the bf16 kernel
    assert (emulated.double() - exact).abs().max() <= (native.double() - exact).abs().max()
    grad = torch.autograd.grad(emulated.float().sum(), q)[0]
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_compiled_emulated_linear_matches_eager():
    """torch.compile keeps the emulated product whole (a custom op): same values and gradients."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 24)
    x = torch.randn(5, 32, requires_grad=True)

    def run(fn):
        with torch.autocast("cpu", dtype=torch.bfloat16), bf16_gemm_via_fp32():
            out = fn(x)
        return (out, *torch.autograd.grad(out.float().square().sum(), (x, layer.weight)))

    compiled = torch.compile(lambda t: F.silu(layer(t)), backend="aot_eager")
    for eager, comp in zip(run(lambda t: F.silu(layer(t))), run(compiled)):
        assert torch.equal(eager, comp)


def test_compiled_blocks_train_like_eager_ones_under_bf16():
    """compile_blocks with inductor keeps autocast's bf16 roundings (inductor would drop them inside
    fused kernels): the same loss, and weight gradients that are bf16 values equal to eager's up to
    summation order."""
    from llmzoo.train.model import compile_blocks

    config = ModelConfig(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, d_ff=160, max_seq_len=64)
    ids = torch.randint(0, 256, (2, 33), generator=torch.Generator().manual_seed(1))

    def loss_and_grads(compiled: bool):
        torch.manual_seed(0)
        model = build_model(config).train()
        set_fused_projections(model, True)
        if compiled:
            compile_blocks(model)
        with torch.autocast("cpu", dtype=torch.bfloat16), bf16_gemm_via_fp32():
            loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
        loss.backward()
        return loss.detach(), {name: p.grad for name, p in model.named_parameters()}

    eager_loss, eager_grads = loss_and_grads(False)
    compiled_loss, compiled_grads = loss_and_grads(True)
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-6, atol=0)
    for name, grad in compiled_grads.items():
        torch.testing.assert_close(grad, eager_grads[name], rtol=1e-5, atol=1e-7, msg=name)
        if name.startswith("layers.") and "norm" not in name:  # a bf16 GEMM's gradient is a bf16 value
            assert torch.equal(grad, grad.bfloat16().float()), name
