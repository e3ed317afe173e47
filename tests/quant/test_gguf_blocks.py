"""GGUF blocks as QuantLinear: unpacking equals gguf-py's dequantize, and the native matmul
equals gguf-py's dequantize followed by a float matmul.

Tensors come from gguf-py's own quantizer where it has one (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0); for
the k-quants (gguf-py dequantizes them but cannot quantize them) from random block bytes with
sane f16 scales: every byte pattern is a valid block, and dequantize is the reference anyway.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from llmzoo.quant.apply import _from_grouped
from llmzoo.quant.gguf_blocks import unpack
from llmzoo.quant.linear import DENSE_ROWS

N, K = 80, 512  # 80 rows: not a multiple of the kernel's 64-row padding; 512 = two k-quant super-blocks
QUANTIZABLE = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
K_QUANTS = {T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,)}  # byte offsets of each block's f16 scales


def _blocks(qtype: T, seed: int = 0) -> np.ndarray:
    """(N, bytes per row) uint8 rows of `qtype` blocks."""
    rng = np.random.default_rng(seed)
    if qtype in QUANTIZABLE:
        return quantize(rng.standard_normal((N, K)).astype(np.float32) * 0.05, qtype)
    block, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (N * K // block, size), dtype=np.uint8)
    for at in K_QUANTS[qtype]:
        raw[:, at:at + 2] = rng.uniform(1e-4, 2e-3, (len(raw), 1)).astype(np.float16).view(np.uint8)
    return raw.reshape(N, -1)


ALL = QUANTIZABLE + list(K_QUANTS)


@pytest.mark.parametrize("qtype", ALL, ids=lambda t: t.name)
def test_unpacked_codes_are_gguf_py_dequantize(qtype):
    raw = _blocks(qtype)
    np.testing.assert_allclose(unpack(raw, qtype, (N, K)).dequantize(), dequantize(raw, qtype), rtol=1e-6, atol=0)


@pytest.mark.parametrize("qtype", ALL, ids=lambda t: t.name)
def test_native_matmul_equals_dequantize_then_matmul(qtype):
    raw = _blocks(qtype, seed=1)
    reference_w = torch.from_numpy(dequantize(raw, qtype).astype(np.float32))
    bias = torch.randn(N)
    layer = _from_grouped(unpack(raw, qtype, (N, K)), bias, qtype.name)
    assert (layer.in_features, layer.out_features) == (K, N)
    torch.testing.assert_close(layer.weight, reference_w, rtol=1e-6, atol=0)  # .weight: the file's exact values

    g = torch.Generator().manual_seed(2)
    few = torch.randn(3, K, generator=g)  # decode-sized: the bf16 int4 kernel
    ref = few @ reference_w.T + bias
    err = (layer(few) - ref).norm() / ref.norm()
    # bf16 keeps 8 significant bits: activations and scales each round by <= 2^-9 relative
    assert err < 1e-2, f"{qtype.name}: relative error {err:.2e} of the kernel path"

    many = torch.randn(DENSE_ROWS + 5, K, generator=g)  # prefill-sized: dequantize + fp32 GEMM
    torch.testing.assert_close(layer(many), many @ reference_w.T + bias, rtol=1e-5, atol=1e-5)


def test_rows_reordered_like_rope_deinterleaving():
    raw = _blocks(T.Q4_1)
    order = np.random.default_rng(3).permutation(N)
    moved = unpack(raw, T.Q4_1, (N, K)).take_rows(order).dequantize()
    np.testing.assert_array_equal(moved, dequantize(raw, T.Q4_1)[order])
