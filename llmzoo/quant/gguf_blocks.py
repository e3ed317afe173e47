"""GGUF block formats unpacked into integer codes, scales and offsets: w = scale * code + offset.

Every ggml quantization of the legacy and k-quant families stores, per block of a row, small
unsigned integer codes and the parameters of one affine map per group of codes (ggml's
ggml-quants.c; block layouts in ggml-common.h). Written as (codes, scale, offset) they all become
the group-wise integer format the matmul kernels of llmzoo.quant.linear run on:

    type   bits  group  scale        offset           block layout (bytes)
    Q4_0   4     32     d            -8 d             d:f16 | 16 x two nibbles
    Q4_1   4     32     d            m                d:f16 m:f16 | 16 x two nibbles
    Q5_0   5     32     d            -16 d            d:f16 | qh:u32 (5th bits) | 16 x two nibbles
    Q5_1   5     32     d            m                d:f16 m:f16 | qh:u32 | 16 x two nibbles
    Q8_0   8     32     d            -128 d           d:f16 | 32 x i8 (code = i8 + 128)
    Q4_K   4     32     d * sc_j     -dmin * m_j      super-block of 256: d, dmin:f16 | 12 B of 6-bit sc/m | 128 B
    Q5_K   5     32     d * sc_j     -dmin * m_j      as Q4_K + 32 B of 5th bits
    Q6_K   6     16     d * sc_j     -32 d * sc_j     super-block of 256: 128 B low nibbles | 64 B 2-bit highs | 16 x i8 sc | d:f16

Each unpacker takes the blocks of a tensor as (n_blocks, type_size) bytes and returns codes
(n_blocks, block_size) and per-group scale/offset (n_blocks, block_size // group), computed in
float32 exactly as gguf-py's `gguf.quants.dequantize` computes the products, so
scale * code + offset is that dequantization to the bit (tests/quant/test_gguf_blocks.py).
Other types (Q2_K, Q3_K, the IQ and ternary formats) have no unpacker here: callers dequantize them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

QK_K = 256  # values per k-quant super-block


@dataclass
class GroupedInts:
    """A matrix as unsigned integer codes with one affine map per group of `group` codes in a row."""

    codes: np.ndarray  # (N, K) uint8, each < 2**bits
    scale: np.ndarray  # (N, K // group) float32
    offset: np.ndarray  # (N, K // group) float32
    bits: int
    group: int

    def dequantize(self) -> np.ndarray:
        """(N, K) float32: scale * code + offset."""
        n, k = self.codes.shape
        codes = self.codes.reshape(n, k // self.group, self.group).astype(np.float32)
        return (codes * self.scale[..., None] + self.offset[..., None]).reshape(n, k)

    def take_rows(self, order: np.ndarray) -> GroupedInts:
        """The same matrix with its rows reordered (RoPE's de-interleaving of Q/K rows moves whole rows)."""
        return GroupedInts(self.codes[order], self.scale[order], self.offset[order], self.bits, self.group)


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    """(n_blocks, 1) float32 from the little-endian f16 at byte `start` of each block."""
    return blocks[:, start:start + 2].copy().view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray, run: int) -> np.ndarray:
    """Split bytes into 4-bit codes: each run of `run` bytes holds `run` codes in its low nibbles,
    followed by the next `run` codes in its high nibbles (ggml's order for every nibble format)."""
    n = qs.shape[0]
    qs = qs.reshape(n, -1, 1, run)
    return np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(n, -1)


def _fifth_bits(qh: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1: bit i of the block's u32 is the fifth bit of code i."""
    bits = qh.copy().view("<u4")  # (n, 1)
    return ((bits >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)


def _q4_0(b):
    d = _f16(b, 0)
    return _nibbles(b[:, 2:], 16), d, -8 * d


def _q4_1(b):
    return _nibbles(b[:, 4:], 16), _f16(b, 0), _f16(b, 2)


def _q5_0(b):
    d = _f16(b, 0)
    return _nibbles(b[:, 6:], 16) | (_fifth_bits(b[:, 2:6]) << 4), d, -16 * d


def _q5_1(b):
    return _nibbles(b[:, 8:], 16) | (_fifth_bits(b[:, 4:8]) << 4), _f16(b, 0), _f16(b, 2)


def _q8_0(b):
    d = _f16(b, 0)
    return (b[:, 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8), d, -128 * d


def _k_scales(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 six-bit scales and mins of a Q4_K/Q5_K super-block from its 12 bytes: bytes 0-3 hold
    scales 0-3 (low 6 bits) and the top 2 bits of scales 4-7; 4-7 the same for mins; 8-11 the
    low 4 bits of scales 4-7 (low nibble) and of mins 4-7 (high nibble)."""
    n = packed.shape[0]
    s = packed.reshape(n, 3, 4)
    lo_s, lo_m, rest = s[:, 0], s[:, 1], s[:, 2]
    sc = np.concatenate([lo_s & 0x3F, (rest & 0x0F) | ((lo_s >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([lo_m & 0x3F, (rest >> 4) | ((lo_m >> 2) & 0x30)], axis=-1)
    return sc.astype(np.float32), mn.astype(np.float32)


def _q4_k(b):
    d, dmin = _f16(b, 0), _f16(b, 2)
    sc, mn = _k_scales(b[:, 4:16])
    return _nibbles(b[:, 16:], 32), d * sc, -(dmin * mn)


def _q5_k(b):
    n = b.shape[0]
    d, dmin = _f16(b, 0), _f16(b, 2)
    sc, mn = _k_scales(b[:, 4:16])
    low = _nibbles(b[:, 48:], 32)
    # 32 bytes of fifth bits: bit j of byte i is the fifth bit of code 32 j + i
    qh = b[:, 16:48].reshape(n, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
    return low | ((qh & 1).reshape(n, -1) << 4), d * sc, -(dmin * mn)


def _q6_k(b):
    n = b.shape[0]
    ql, qh, sc = b[:, :128], b[:, 128:192], b[:, 192:208].view(np.int8).astype(np.float32)
    low = _nibbles(ql, 64).reshape(n, -1, 32)  # two halves of 128 codes, each in 4 runs of 32
    high = qh.reshape(n, -1, 1, 32) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    codes = (low | ((high & 0x03).reshape(n, -1, 32) << 4)).reshape(n, QK_K)
    scale = _f16(b, 208) * sc  # (n, 16): one per 16 codes
    return codes, scale, -32 * scale


# type -> (unpacker, bits, group)
UNPACKERS: dict[GGMLQuantizationType, tuple[Callable, int, int]] = {
    GGMLQuantizationType.Q4_0: (_q4_0, 4, 32),
    GGMLQuantizationType.Q4_1: (_q4_1, 4, 32),
    GGMLQuantizationType.Q5_0: (_q5_0, 5, 32),
    GGMLQuantizationType.Q5_1: (_q5_1, 5, 32),
    GGMLQuantizationType.Q8_0: (_q8_0, 8, 32),
    GGMLQuantizationType.Q4_K: (_q4_k, 4, 32),
    GGMLQuantizationType.Q5_K: (_q5_k, 5, 32),
    GGMLQuantizationType.Q6_K: (_q6_k, 6, 16),
}


def can_unpack(qtype: GGMLQuantizationType) -> bool:
    return qtype in UNPACKERS


def unpack(raw: np.ndarray, qtype: GGMLQuantizationType, shape: tuple[int, int]) -> GroupedInts:
    """The (N, K) matrix whose rows are stored in `raw` ((N, bytes per row) uint8) as `qtype` blocks."""
    unpacker, bits, group = UNPACKERS[qtype]
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n, k = shape
    blocks = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1, type_size)
    codes, scale, offset = unpacker(blocks)
    return GroupedInts(codes.reshape(n, k).astype(np.uint8, copy=False), scale.reshape(n, k // group),
                       offset.reshape(n, k // group).astype(np.float32), bits, group)
