"""GGUF quantization: the block formats llama.cpp runs, and llama.cpp's choice of type per tensor.

Q8_0, Q4_0, Q4_1 and Q5_0 (32-value blocks with one f16 scale, and a minimum for Q4_1) come from
gguf-py's `gguf.quants.quantize`. gguf-py 0.19 can only *dequantize* the k-quants, so Q4_K and Q6_K
(256-value super-blocks, ggml's `block_q4_K` / `block_q6_K`) are quantized here, vectorised in numpy,
with the search ggml's reference quantizer (ggml-quants.c, `quantize_row_q4_K_ref` /
`quantize_row_q6_K_ref`) does:

* Q4_K: each 32-value sub-block gets x ~ scale * q - min, q in 0..15. The (scale, min) pair is the
  weighted least-squares fit over candidate grids (`make_qkx2_quants`: the grid 15/(max-min), and
  21 more stretched by -1.0 .. +1.0 levels; weights sqrt(mean x^2) + |x|); the 8 scales and
  8 mins are then stored as 6-bit multiples of two f16 super-block factors, and q is recomputed
  against the stored (rounded) scales.
* Q6_K: each 16-value sub-block gets x ~ scale * q, q in -32..31; scale is the x^2-weighted
  least-squares fit over 19 grids around 32/max (`make_qx_quants`, rmse_type 1); the 16 scales are
  stored as int8 multiples of one f16 factor.

Which type each tensor gets follows llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp):
1-D tensors stay F32; the output head -- or the token embedding when it doubles as the head -- is
Q6_K (Q8_0 under q8_0); for Q4_K_M, attn_v and ffn_down get Q6_K in the first and last eighth of
the layers and every third layer between (`use_more_bits`), every other matrix Q4_K; and a
matrix whose rows do not split into the type's blocks falls back as llama.cpp does (Q4_K -> Q5_0,
Q6_K -> Q8_0, and F16 when even 32 does not divide the row). The 70B / mixture-of-experts special
cases of that function do not apply to the architectures llmzoo writes and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType
from gguf.quants import quantize as gguf_py_quantize

from llmzoo.errors import ConfigError

Q = GGMLQuantizationType
QK_K = 256  # values per k-quant super-block
_ROWS_PER_CHUNK = 4096  # bounds the k-quant search's temporaries (~22 arrays of this many rows)


@dataclass(frozen=True)
class FileType:
    """One `--quant` / `dtype` choice: the default tensor type and the general.file_type it is recorded as."""

    default: GGMLQuantizationType
    file_type: LlamaFileType
    mixture: str | None = None  # "q4_k_m": llama.cpp's per-tensor recipe on top of the default


FILE_TYPES: dict[str, FileType] = {
    "f32": FileType(Q.F32, LlamaFileType.ALL_F32),
    "f16": FileType(Q.F16, LlamaFileType.MOSTLY_F16),
    "bf16": FileType(Q.BF16, LlamaFileType.MOSTLY_BF16),
    "q8_0": FileType(Q.Q8_0, LlamaFileType.MOSTLY_Q8_0),
    "q4_0": FileType(Q.Q4_0, LlamaFileType.MOSTLY_Q4_0),
    "q4_1": FileType(Q.Q4_1, LlamaFileType.MOSTLY_Q4_1),
    "q4_k_m": FileType(Q.Q4_K, LlamaFileType.MOSTLY_Q4_K_M, mixture="q4_k_m"),
}
QUANTS = ("q8_0", "q4_0", "q4_1", "q4_k_m")  # the quantized choices, as `--quant` lists them
_UNQUANTIZED = (Q.F32, Q.F16, Q.BF16)
# llama.cpp's tensor_type_fallback: a type whose block does not divide the row -> a 32-block type
_FALLBACK = {Q.Q4_K: Q.Q5_0, Q.Q6_K: Q.Q8_0}
_LAYER = re.compile(r"^blk\.(\d+)\.")


def file_type(name: str) -> FileType:
    if name not in FILE_TYPES:
        raise ConfigError(f"unknown GGUF type {name!r}; choose one of {', '.join(FILE_TYPES)} "
                          f"(quantized: {', '.join(QUANTS)})")
    return FILE_TYPES[name]


def is_quantized(qtype: GGMLQuantizationType) -> bool:
    return qtype not in _UNQUANTIZED


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's layers that get the bigger type in the _M mixtures: first/last eighth, every third between."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def tensor_type(name: str, shape: tuple[int, ...], choice: FileType, n_layers: int, tied: bool) -> GGMLQuantizationType:
    """The type llama.cpp's quantizer gives GGUF tensor `name` (PyTorch `shape`: rows last is the row length)."""
    if len(shape) == 1:
        return Q.F32  # norms, biases, rope_freqs: llama.cpp never quantizes 1-D tensors
    qtype = choice.default
    if not is_quantized(qtype):
        return qtype
    row = shape[-1]
    is_head = name == "output.weight" or (tied and name == "token_embd.weight")
    if is_head:  # the output head is the most sensitive matrix: at least Q6_K
        if row % GGML_QUANT_SIZES[qtype][0]:
            qtype = Q.Q8_0
        elif qtype != Q.Q8_0:
            qtype = Q.Q6_K
    elif choice.mixture == "q4_k_m":
        layer = _LAYER.match(name)
        if layer and (".attn_v." in name or ".ffn_down." in name) and _use_more_bits(int(layer[1]), n_layers):
            qtype = Q.Q6_K
    block = GGML_QUANT_SIZES[qtype][0]
    if row % block:
        qtype = _FALLBACK.get(qtype, qtype)
        if row % GGML_QUANT_SIZES[qtype][0]:
            qtype = Q.F16  # llama.cpp: "must use F16 due to unusual shape"
    return qtype


def quantize(values: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """`values` (float32, rows last) as GGUF tensor data of `qtype`: uint8 rows of blocks (float for F32/F16)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if qtype in (Q.Q4_K, Q.Q6_K):
        quantize_rows = _quantize_q4_k if qtype == Q.Q4_K else _quantize_q6_k
        rows = values.reshape(-1, values.shape[-1])
        out = [quantize_rows(rows[i:i + _ROWS_PER_CHUNK]) for i in range(0, len(rows), _ROWS_PER_CHUNK)]
        data = np.concatenate(out) if out else np.zeros((0, 0), np.uint8)
        return data.reshape(*values.shape[:-1], -1)
    return gguf_py_quantize(values, qtype)


# -- the k-quants ---------------------------------------------------------------------------------


def _blocks(rows: np.ndarray, sub: int) -> np.ndarray:
    """(rows, n) -> (blocks, 256 // sub, sub): one super-block per row of the result."""
    if rows.shape[-1] % QK_K:
        raise ConfigError(f"k-quant rows must be a multiple of {QK_K} values, got {rows.shape[-1]}")
    return rows.reshape(-1, QK_K // sub, sub)


def _f16(x: np.ndarray) -> np.ndarray:
    """Round to the f16 the block stores, and back: later steps must use the stored value."""
    return x.astype(np.float16).astype(np.float32)


def _fit_scale_min(x: np.ndarray, nmax: int, steps: int, rmin: float, rdelta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per sub-block (last axis) the (scale, min <= 0) with x ~ scale * q + min, q in 0..nmax, minimising
    the weighted squared error over the plain grid and `steps + 1` stretched ones (ggml's make_qkx2_quants)."""
    weights = np.sqrt(np.mean(x * x, axis=-1, keepdims=True)) + np.abs(x)
    lo = np.minimum(x.min(axis=-1, keepdims=True), 0.0)
    span = x.max(axis=-1, keepdims=True) - lo
    flat = span == 0
    span = np.where(flat, np.float32(1), span)
    wx = weights * x
    sum_w, sum_x, sum_x2 = weights.sum(-1), wx.sum(-1), (wx * x).sum(-1)

    def fit(iscale: np.ndarray):
        """q on the grid 1/iscale from lo, and the sums the least-squares fit and its error need."""
        q = np.clip(np.rint(iscale * (x - lo)), 0, nmax)
        wq = weights * q
        return wq.sum(-1), (wq * q).sum(-1), (wq * x).sum(-1)

    def error(scale, offset, sum_l, sum_l2, sum_xl):
        # sum w (scale q + offset - x)^2, expanded so that no pass over the values is needed
        return (scale * scale * sum_l2 + 2 * scale * offset * sum_l - 2 * scale * sum_xl + offset * offset * sum_w
                - 2 * offset * sum_x + sum_x2)

    iscale = nmax / span
    best_scale, best_min = 1 / iscale[..., 0], lo[..., 0]
    best = error(best_scale, best_min, *fit(iscale))
    for step in range(steps + 1):
        sum_l, sum_l2, sum_xl = fit((rmin + rdelta * step + nmax) / span)
        det = sum_w * sum_l2 - sum_l * sum_l
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = (sum_w * sum_xl - sum_x * sum_l) / det
            offset = (sum_l2 * sum_x - sum_l * sum_xl) / det
            positive = offset > 0  # a positive min is not representable: refit the scale alone through 0
            scale = np.where(positive, sum_xl / sum_l2, scale)
            offset = np.where(positive, 0.0, offset)
        cur = error(scale, offset, sum_l, sum_l2, sum_xl)
        better = (det > 0) & (cur < best)
        best = np.where(better, cur, best)
        best_scale = np.where(better, scale, best_scale)
        best_min = np.where(better, offset, best_min)
    best_scale = np.where(flat[..., 0], 0.0, best_scale)
    best_min = np.where(flat[..., 0], lo[..., 0], best_min)
    return best_scale, -best_min  # ggml stores the min as a positive offset


def _quantize_q4_k(rows: np.ndarray) -> np.ndarray:
    x = _blocks(rows, 32)  # (nb, 8, 32)
    scales, mins = _fit_scale_min(x, nmax=15, steps=20, rmin=-1.0, rdelta=0.1)
    scales = np.maximum(scales, 0.0)
    max_scale, max_min = scales.max(-1, keepdims=True), mins.max(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ls = np.where(max_scale > 0, np.minimum(63, np.rint(63 / max_scale * scales)), 0).astype(np.uint8)
        lm = np.where(max_min > 0, np.minimum(63, np.rint(63 / max_min * mins)), 0).astype(np.uint8)
    d, dmin = _f16(max_scale / 63), _f16(max_min / 63)
    step, offset = (d * ls)[..., None], (dmin * lm)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step > 0, np.clip(np.rint((x + offset) / step), 0, 15), 0).astype(np.uint8)

    # 12 bytes hold eight 6-bit scales and mins: bytes 0-3 scales 0-3, 4-7 mins 0-3 (their top two
    # bits carry the high bits of scales/mins 4-7), 8-11 the low nibbles of scales/mins 4-7.
    packed = np.empty((len(x), 12), np.uint8)
    packed[:, 0:4] = ls[:, :4] | ((ls[:, 4:] >> 4) << 6)
    packed[:, 4:8] = lm[:, :4] | ((lm[:, 4:] >> 4) << 6)
    packed[:, 8:12] = (ls[:, 4:] & 0xF) | ((lm[:, 4:] & 0xF) << 4)
    # each 32 bytes of qs: sub-block 2k in the low nibbles, 2k+1 in the high ones
    pairs = q.reshape(len(x), 4, 2, 32)
    qs = (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(len(x), 128)
    block = np.concatenate([d.astype(np.float16).view(np.uint8), dmin.astype(np.float16).view(np.uint8),
                            packed, qs], axis=1)
    return block.reshape(len(rows), -1)


def _fit_scale_symmetric(x: np.ndarray, nmax: int) -> np.ndarray:
    """Per sub-block the scale with x ~ scale * q, q in -nmax..nmax-1, best of 19 grids under x^2
    weights (ggml's make_qx_quants, rmse_type 1)."""
    weights = x * x
    wx = weights * x
    pick = np.argmax(np.abs(x), axis=-1)[..., None]
    signed_max = np.take_along_axis(x, pick, axis=-1)
    zero = np.abs(signed_max) < 1e-15  # ggml's GROUP_MAX_EPS: an all-zero sub-block
    signed_max = np.where(zero, 1.0, signed_max)
    best_scale = best = None
    for step in [0, *range(-9, 0), *range(1, 10)]:
        iscale = -(nmax + 0.1 * step) / signed_max
        q = np.clip(np.rint(iscale * x), -nmax, nmax - 1)
        sum_lx = (wx * q).sum(-1, keepdims=True)
        sum_l2 = (weights * (q * q)).sum(-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(sum_l2 > 0, sum_lx / sum_l2, 0.0)
        if best is None:
            best_scale, best = scale, scale * sum_lx
            continue
        better = (sum_l2 > 0) & (sum_lx * sum_lx > best * sum_l2)
        best_scale = np.where(better, scale, best_scale)
        best = np.where(better, scale * sum_lx, best)
    return np.where(zero, 0.0, best_scale)[..., 0]


def _quantize_q6_k(rows: np.ndarray) -> np.ndarray:
    x = _blocks(rows, 16)  # (nb, 16, 16)
    scales = _fit_scale_symmetric(x, nmax=32)
    pick = np.argmax(np.abs(scales), axis=-1)[..., None]
    max_scale = np.take_along_axis(scales, pick, axis=-1)
    empty = np.abs(max_scale) < 1e-15
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(empty, 0.0, -128 / max_scale)
        d = _f16(np.where(empty, 0.0, 1 / iscale))
    sc = np.minimum(127, np.rint(iscale * scales)).astype(np.int8)
    step = (d * sc)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step != 0, np.clip(np.rint(x / step), -32, 31), 0)
    q = (q + 32).astype(np.uint8).reshape(len(x), 2, 4, 32)  # two halves of 128, four quarters of 32
    low = q & 0xF
    ql = np.concatenate([low[:, :, 0] | (low[:, :, 2] << 4), low[:, :, 1] | (low[:, :, 3] << 4)], axis=2)
    high = q >> 4
    qh = high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)
    block = np.concatenate([ql.reshape(len(x), 128), qh.reshape(len(x), 64), sc.view(np.uint8),
                            d.astype(np.float16).view(np.uint8)], axis=1)
    return block.reshape(len(rows), -1)
