"""llmzoo's own grouped-integer matmul (llmzoo/quant/native): equal to dequantize-then-fp32-matmul
to its stated precision (int16 activations per group of 32: 2^-16 of the group's largest value),
traced by torch.compile without a graph break, and replaced cleanly by PyTorch's int4 kernel
where it cannot run."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from llmzoo.quant import grouped_codes, native
from llmzoo.quant.apply import _from_grouped
from llmzoo.quant.gguf_blocks import GroupedInts, unpack

pytestmark = pytest.mark.skipif(not native.available(), reason="llmzoo's native kernel did not build here "
                                "(see the warning; `python -m llmzoo.quant.native build` says why)")


def _grouped(n: int, k: int, bits: int, seed: int) -> GroupedInts:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2 ** bits, (n, k), dtype=np.uint8)
    scale = rng.uniform(1e-3, 1e-2, (n, k // 32)).astype(np.float32)
    offset = rng.normal(0, 1e-2, (n, k // 32)).astype(np.float32)
    return GroupedInts(codes, scale, offset, bits, 32)


@pytest.mark.parametrize("bits", [4, 5, 8])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9, 31])  # every row tile and tail, up to the dense switch
def test_matmul_equals_dequantized_weight_times_x(bits, rows):
    g = _grouped(37, 96, bits, seed=bits * 100 + rows)  # 37 outputs: an odd tail after pairs of features
    codes, scale, offset, storage = grouped_codes.pack(g)
    w = torch.from_numpy(g.dequantize())
    # the storage shifts 8-bit codes and their offsets; the weight it stands for is the same
    torch.testing.assert_close(grouped_codes.dequantize_rows(codes, scale, offset, storage, 0, 37), w,
                               rtol=1e-6, atol=1e-7)
    x = torch.randn(rows, 96, generator=torch.Generator().manual_seed(rows)) * 3
    got = native.grouped_matmul(x, codes, scale, offset, storage)
    want = (x.double() @ w.double().T).float()
    # each activation is within 2^-16 of its group's largest: the error is that, summed over K terms
    bound = (x.abs().view(rows, -1, 32).amax(-1, keepdim=True).expand(-1, -1, 32).reshape(rows, 96)
             * 2.0 ** -16) @ w.abs().T
    assert torch.all((got - want).abs() <= bound + 1e-6), float(((got - want).abs() - bound).max())


@pytest.mark.parametrize("qtype", [T.Q4_0, T.Q4_1, T.Q5_1, T.Q8_0], ids=lambda t: t.name)
def test_gguf_layers_run_on_it_close_to_fp32(qtype):
    raw = quantize(np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32) * 0.05, qtype)
    layer = _from_grouped(unpack(raw, qtype, (64, 256)), None, qtype.name)
    assert layer.kind == "grouped"
    w = torch.from_numpy(dequantize(raw, qtype).astype(np.float32))
    torch.testing.assert_close(layer.weight, w, rtol=1e-6, atol=0)  # the file's exact values
    x = torch.randn(3, 256)
    ref = x @ w.T
    assert float((layer(x) - ref).norm() / ref.norm()) < 1e-4  # bf16 kernels manage ~3e-3


def test_compiled_forward_has_no_graph_break_and_equals_eager():
    g = _grouped(64, 128, 4, seed=7)
    layer = _from_grouped(g, torch.randn(64), "int4 g32")
    x = torch.randn(2, 128)
    compiled = torch.compile(layer, fullgraph=True, dynamic=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), layer(x))


def test_without_the_kernel_layers_use_torchs_int4_kernel(monkeypatch):
    g = _grouped(64, 128, 4, seed=8)
    native_layer = _from_grouped(g, None, "int4 g32")
    monkeypatch.setattr(native, "available", lambda: False)
    fallback = _from_grouped(g, None, "int4 g32")
    assert (native_layer.kind, fallback.kind) == ("grouped", "int4")
    torch.testing.assert_close(fallback.weight, native_layer.weight, rtol=1e-6, atol=1e-7)
    x = torch.randn(2, 128)
    torch.testing.assert_close(fallback(x), native_layer(x), rtol=2e-2, atol=2e-2)  # bf16 vs int16 activations


def test_a_failed_build_is_one_warning_and_no_kernel(monkeypatch):
    def broken():
        raise RuntimeError("Error building extension 'llmzoo_native'\ng++: not found")

    monkeypatch.setattr(native, "_load", broken)
    native.available.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert native.available() is False
        assert len(caught) == 1 and "g++: not found" in str(caught[0].message)
        assert "PyTorch's int4 kernel" in str(caught[0].message)
    finally:
        native.available.cache_clear()
    monkeypatch.undo()
    assert native.available()
