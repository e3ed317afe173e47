"""Group-wise integer weights run on PyTorch's CPU int4 kernel, as one or more 4-bit planes.

`torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, group, scale_and_zero)` multiplies bf16
activations by a weight stored as 4-bit codes q with one (scale, zero) pair per group of 32, 64,
128 or 256 inputs of a row: w = scale * (q - 8) + zero (the "tinygemm" convention). It is
vectorised for bf16 only (fp32 and fp16 inputs take a scalar path ~15x slower here), so
activations, scales and the output are bf16 and the kernel accumulates in fp32.

Codes of more than 4 bits (Q5_*, Q6_K, Q8_0) are split into a high and a low nibble,
code = 16 hi + lo, and each nibble becomes a plane with its own scale and zero. The high plane
is stored as hi + 8 - c, c = 2**(bits - 5) the middle of its range, so that its zero stays small
(a large zero would lose more to bf16 rounding than the weights it shifts are worth):

    scale * code + offset = 16 scale * (hi - c) + (offset + 16 c scale)  +  scale * (lo - 8) + 8 scale

For Q8_0 (offset -128 d, c = 8) and Q6_K (-32 d sc, c = 2) the high zero is exactly 0, so the
weight is represented exactly up to the bf16 rounding of the scale; the matmul is the sum of one
kernel call per plane.

Groups of 16 (Q6_K) are below the kernel's smallest group: every 16 inputs are then padded with
16 zero inputs (`pad16`), so a kernel group of 32 holds one source group and 16 ignored weights.

The packed layout is PyTorch's and depends on the CPU's vector width; `unpack_codes` reads it
back (for `dequantize`) after checking its assumption on a probe matrix once per process.
"""

from __future__ import annotations

import functools

import torch

KERNEL_GROUPS = (32, 64, 128, 256)
_N_MULTIPLE = 64  # the kernel wants N % 16 == 0; 64 also covers every vector width's row block


def _pack(codes: torch.Tensor) -> torch.Tensor:
    """(N, K) codes in [0, 16) -> the kernel's packed uint8 layout."""
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32).contiguous(), 1)


@functools.cache
def _row_block() -> int:
    """Rows per block of the CPU packing: bytes are laid out [N / B, K, B / 2], the low nibble of
    byte j holding row j of the block and the high nibble row j + B / 2 (read from a probe)."""
    n, k = 128, 64
    probe = (torch.arange(n)[:, None] * 7 + torch.arange(k)[None, :] * 3) % 16
    packed = _pack(probe)
    for block in (16, 32, 64, 128):
        if _unpack(packed, n, k, block).equal(probe.to(torch.uint8)):
            return block
    raise RuntimeError("internal: this PyTorch's int4 CPU packing has an unknown layout; "
                       "llmzoo.quant cannot dequantize it")


def _unpack(packed: torch.Tensor, n: int, k: int, block: int) -> torch.Tensor:
    b = packed.reshape(n // block, k, block // 2)
    out = torch.empty(n // block, 2, block // 2, k, dtype=torch.uint8)  # row = slot * B/2 + j
    torch.bitwise_and(b, 0x0F, out=out[:, 0].transpose(1, 2))
    torch.bitwise_right_shift(b, 4, out=out[:, 1].transpose(1, 2))
    return out.reshape(n, k)


def unpack_codes(packed: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """The (N, K) uint8 codes of a packed plane."""
    return _unpack(packed, n, k, _row_block())


def _high_centre(bits: int) -> int:
    """c: the high nibble of a `bits`-bit code is stored as hi + 8 - c (module docstring)."""
    return 2 ** (bits - 5)


class Int4Planes:
    """The tensors of one weight: `packed` (P, N', K'/2) uint8 and `scale_zero` (P, K'/g, N', 2)
    bf16, N' = out_features padded to a multiple of 64, K' = in_features (doubled with pad16)."""

    def __init__(self, packed: torch.Tensor, scale_zero: torch.Tensor, group: int, pad16: bool,
                 out_features: int, in_features: int, scale_offset: torch.Tensor | None = None, bits: int = 4) -> None:
        self.packed, self.scale_zero, self.group, self.pad16, self.bits = packed, scale_zero, group, pad16, bits
        self.out_features, self.in_features = out_features, in_features
        # (N, K / source group, 2) fp32 scale and offset, kept where bf16 cannot hold them (a GGUF
        # file's f16 scales): `dequantize` then gives the file's exact weights, not the bf16-rounded ones
        self.scale_offset = scale_offset
        self._per_plane: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @staticmethod
    def from_codes(codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, bits: int, group: int,
                   keep_fp32: bool = True) -> Int4Planes:
        """codes (N, K) integers in [0, 2**bits), scale/offset (N, K/group): w = scale * code + offset.
        keep_fp32: also keep scale and offset in fp32 for `dequantize` (not needed where they are
        bf16 values already, as llmzoo's own int4 quantization makes them)."""
        n, k = codes.shape
        # with two planes the kernel's scales alone do not give back scale and offset: keep them
        keep_fp32 = keep_fp32 or bits > 4
        scale_offset = torch.stack([scale.float(), offset.float()], dim=-1) if keep_fp32 else None
        pad16 = group == 16
        if pad16:  # each group of 16 inputs gets 16 zero inputs beside it: kernel groups of 32
            codes = torch.cat([codes.reshape(n, k // 16, 16), torch.full((n, k // 16, 16), 8, dtype=codes.dtype)],
                              dim=-1).reshape(n, 2 * k)
            group = 32
        codes = codes.to(torch.int32)
        scale, offset = scale.float(), offset.float()
        if bits <= 4:
            planes = [(codes, scale, offset + 8 * scale)]
        else:
            c = _high_centre(bits)
            planes = [((codes >> 4) + 8 - c, 16 * scale, offset + 16 * c * scale), (codes & 0x0F, scale, 8 * scale)]
        rows = -(-n // _N_MULTIPLE) * _N_MULTIPLE
        packed, scale_zero = [], []
        for q, s, z in planes:
            q = torch.nn.functional.pad(q, (0, 0, 0, rows - n), value=8)  # padded rows: zero weights
            s = torch.nn.functional.pad(s, (0, 0, 0, rows - n), value=1.0)
            z = torch.nn.functional.pad(z, (0, 0, 0, rows - n), value=0.0)
            packed.append(_pack(q))
            scale_zero.append(torch.stack([s.t(), z.t()], dim=-1).to(torch.bfloat16))  # (K'/g, N', 2)
        return Int4Planes(torch.stack(packed), torch.stack(scale_zero).contiguous(), group, pad16, n, k, scale_offset,
                          bits)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(M, K) activations as the kernel reads them: bf16, each 16 followed by 16 zeros under pad16."""
        x = x.to(torch.bfloat16)
        if self.pad16:
            m = x.shape[0]
            x = torch.nn.functional.pad(x.reshape(m, -1, 16), (0, 16)).reshape(m, -1)
        return x.contiguous()

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """(M, K) -> (M, N) in fp32: one kernel call per plane."""
        xb = self._inputs(x)
        if self._per_plane is None:  # unbound once: a decode step calls this ~200 times
            self._per_plane = list(zip(self.packed.unbind(), self.scale_zero.unbind()))
        out = None
        for packed, scale_zero in self._per_plane:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(xb, packed, self.group, scale_zero).float()
            out = y if out is None else out.add_(y)
        return out if out.shape[1] == self.out_features else out[:, : self.out_features]

    def _codes(self, r0: int, r1: int) -> torch.Tensor:
        """(r1 - r0, K') uint8 codes of rows r0:r1 (multiples of the row block), planes recombined."""
        kp = self.packed.shape[2] * 2
        planes = [unpack_codes(p.reshape(-1)[r0 * kp // 2: r1 * kp // 2], r1 - r0, kp) for p in self.packed]
        if len(planes) == 1:
            return planes[0]
        return planes[0].sub_(8 - _high_centre(self.bits)).bitwise_left_shift_(4).bitwise_or_(planes[1])

    def _scale_offset(self, r0: int, r1: int) -> torch.Tensor:
        """(r1 - r0, K' / g, 2) fp32 scale and offset per group: w = scale * code + offset."""
        if self.scale_offset is not None:
            return self.scale_offset[r0:r1]
        sz = self.scale_zero[0, :, r0:r1].float().transpose(0, 1)  # one plane: w = s (q - 8) + z
        return torch.stack([sz[..., 0], sz[..., 1] - 8 * sz[..., 0]], dim=-1)

    def dequantize_rows(self, r0: int, r1: int) -> torch.Tensor:
        """(r1 - r0, K) float32 rows of the weight (r1 <= out_features). From the fp32 scales and
        offsets where kept, else from the kernel's own bf16 ones (then the weight the kernel uses)."""
        block = _row_block()
        lo, hi = r0 - r0 % block, min(-(-r1 // block) * block, self.packed.shape[1])
        codes = self._codes(lo, hi)[r0 - lo: r1 - lo]
        if self.pad16:  # drop the 16 padding inputs after every 16
            codes = codes.reshape(r1 - r0, -1, 32)[..., :16]
        so = self._scale_offset(r0, r1)
        group = self.in_features // so.shape[1]
        w = codes.reshape(r1 - r0, -1, group).float()
        return torch.addcmul(so[..., 1:], w, so[..., :1]).reshape(r1 - r0, self.in_features)

    def dequantize(self) -> torch.Tensor:
        """(N, K) float32: the whole weight."""
        return self.dequantize_rows(0, self.out_features)

    def dense_matmul(self, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """(M, K) fp32 -> (M, N): x @ W^T with W dequantized `chunk` rows at a time (bounded memory)."""
        out = x.new_empty(x.shape[0], self.out_features)
        for r0 in range(0, self.out_features, chunk):
            r1 = min(r0 + chunk, self.out_features)
            out[:, r0:r1] = x @ self.dequantize_rows(r0, r1).to(x.dtype).t()
        return out
