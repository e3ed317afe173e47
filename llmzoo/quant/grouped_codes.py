"""Group-wise integer weights in the layout of llmzoo's own kernel (llmzoo/quant/native/).

Groups of 32 inputs, w = scale * code + offset with fp32 scale and offset per group. Codes of
4 bits are two per byte in GGUF's order (byte i of a group: element i in the low nibble, element
i + 16 in the high one); codes of 5 to 8 bits are one int8 each (8-bit codes shifted by -128 to
fit, their offsets by +128 scale: for Q8_0, whose offset is -128 d, that makes the offset exactly
0 and the weight d * i8, as ggml defines it). 0.75 bytes per 4-bit weight, against the fp32 that
dequantizing would take (4 bytes).
"""

from __future__ import annotations

import numpy as np
import torch

from llmzoo.quant import native
from llmzoo.quant.gguf_blocks import GroupedInts


def fits(g: GroupedInts) -> bool:
    """Whether the native kernel runs these codes (on this machine)."""
    return g.group == native.GROUP and g.codes.shape[1] % native.GROUP == 0 and g.bits <= 8 and native.available()


def pack(g: GroupedInts) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(codes, scale, offset, storage bits) for the kernel from unpacked codes."""
    n, k = g.codes.shape
    scale = g.scale.astype(np.float32)
    offset = g.offset.astype(np.float32)
    if g.bits <= 4:
        c = g.codes.reshape(n, k // 32, 2, 16)
        codes = (c[:, :, 0] | (c[:, :, 1] << 4)).astype(np.uint8).reshape(n, k // 2)
        return torch.from_numpy(codes), torch.from_numpy(scale), torch.from_numpy(offset), 4
    shift = 128 if g.bits == 8 else 0  # 5-7 bit codes fit int8 as they are
    codes = (g.codes.astype(np.int16) - shift).astype(np.int8)
    offset = offset + np.float32(shift) * scale if shift else offset
    return torch.from_numpy(codes), torch.from_numpy(scale), torch.from_numpy(offset), 8


# GGUF types whose blocks hold the codes in the kernel's layout already: (bytes before the codes,
# bits). ggml-common.h: block_q4_0 {d; qs[16]}, block_q4_1 {d; m; qs[16]}, block_q8_0 {d; qs[32] as i8}.
_AS_STORED = {"Q4_0": (2, 4), "Q4_1": (4, 4), "Q8_0": (2, 8)}


def stored_as_codes(qtype_name: str) -> bool:
    """Whether `from_blocks` takes this GGUF type's codes as stored."""
    return qtype_name in _AS_STORED


def from_blocks(raw: np.ndarray, qtype_name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None:
    """`pack(unpack(raw))` without the unpacked copies, for the types of `_AS_STORED` (None for the
    others): their codes are the file's bytes as they are, so a load takes one copy of them instead
    of the several int16/uint8 temporaries of unpacking (a 49k-row Q8_0 head: ~30 MB, not ~250).
    `raw`: (rows, bytes per row) uint8. The scales and offsets are those `pack` computes, to the bit."""
    if qtype_name not in _AS_STORED:
        return None
    start, bits = _AS_STORED[qtype_name]
    n = raw.shape[0]
    blocks = raw.reshape(n, -1, start + (16 if bits == 4 else 32))
    d = np.ascontiguousarray(blocks[:, :, 0:2]).view(np.float16)[..., 0].astype(np.float32)
    codes = np.ascontiguousarray(blocks[:, :, start:]).reshape(n, -1)
    if qtype_name == "Q4_0":
        offset = -8 * d
    elif qtype_name == "Q4_1":
        offset = np.ascontiguousarray(blocks[:, :, 2:4]).view(np.float16)[..., 0].astype(np.float32)
    else:  # Q8_0: codes are the i8 values themselves; pack's offset -128 d + 128 d is exactly 0
        codes, offset = codes.view(np.int8), np.zeros_like(d)
    return torch.from_numpy(codes), torch.from_numpy(d), torch.from_numpy(offset), bits


def dequantize_rows(codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, bits: int,
                    r0: int, r1: int) -> torch.Tensor:
    """Rows [r0, r1) of the weight in fp32."""
    n, groups = r1 - r0, scale.shape[1]
    c = codes[r0:r1]
    if bits == 4:
        c = c.view(n, groups, 16)
        values = torch.cat([c & 15, c >> 4], dim=-1).float()
    else:
        values = c.view(n, groups, 32).float()
    return (values * scale[r0:r1, :, None] + offset[r0:r1, :, None]).reshape(n, groups * 32)


def dense_matmul(x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, bits: int,
                 chunk: int = 2048) -> torch.Tensor:
    """x @ W.T through the fp32 GEMM, dequantizing `chunk` output rows at a time (never the whole
    fp32 weight: a 49k-row LM head would be 113 MB): many rows, where a GEMM beats any GEMV."""
    n = scale.shape[0]
    out = x.new_empty(x.shape[0], n)
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        out[:, r0:r1] = x @ dequantize_rows(codes, scale, offset, bits, r0, r1).T
    return out
