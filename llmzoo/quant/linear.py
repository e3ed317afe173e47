"""QuantLinear: a drop-in for nn.Linear whose weight is stored as integer codes.

Three storage kinds:
  "grouped"  groups of 32 codes of up to 8 bits with fp32 scales and offsets on llmzoo's own AVX2
          kernel (llmzoo.quant.native, layout in llmzoo.quant.grouped_codes): Q4_0/Q4_1/Q4_K/Q5_*/Q8_0,
          int4 g32; used wherever that kernel builds, exact to 2^-16 of each activation group
  "int4"  group-wise codes as 4-bit planes on `_weight_int4pack_mm_for_cpu` (llmzoo.quant.int4_planes):
          Q4_0/Q4_1/Q4_K (one plane), Q5_*/Q8_0 (two), Q6_K (two, padded groups), int4
  "int8"  per-row int8 on `_weight_int8pack_mm`: int8

The two PyTorch kernels compute in bf16 (activations and scales rounded to bf16, fp32 accumulation), and
both are built for few rows: they dequantize each weight tile for every block of rows, so with
many rows (prefill, perplexity, training-style batches) dequantizing the whole weight once and
calling the fp32 GEMM is faster. Forward therefore uses the kernel below `DENSE_ROWS` rows (decode
steps) and `F.linear(x, self.weight)` from there on. The dense path multiplies the exact weights
(a GGUF file's f16 scales kept in fp32); the kernel path their bf16-scaled version with bf16
activations, which is as close to fp32 as a bf16 run of the model is (tests/quant).
Off the CPU (no such kernels) every call takes the dense path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.quant import grouped_codes, native
from llmzoo.quant.gguf_blocks import GroupedInts
from llmzoo.quant.int4_planes import Int4Planes

# From this many rows (tokens x batch) on, dequantize + fp32 GEMM beats the bf16 kernels on an
# AVX2 core: the kernels' time grows ~linearly with the rows (SmolLM2-135M shapes: equal at ~32).
DENSE_ROWS = 32


def _bits(t: torch.Tensor) -> torch.Tensor:
    """bf16 values stored as int16, so `model.to(dtype)` (which casts floating tensors) leaves them alone."""
    return t.to(torch.bfloat16).view(torch.int16)


class QuantLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, kind: str, tensors: dict[str, torch.Tensor],
                 bias: torch.Tensor | None, *, group: int = 0, pad16: bool = False, bits: int = 4,
                 source: str = "") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.kind, self.group, self.pad16, self.bits = kind, group, pad16, bits
        self.source = source  # what the codes came from: "Q4_1", "int4 g32", ... (shown in repr)
        for name, t in tensors.items():
            # not persistent: the state dict of a quantized model has no float weights to save
            self.register_buffer(name, t, persistent=False)
        self.bias = nn.Parameter(bias.detach().float(), requires_grad=False) if bias is not None else None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_planes(cls, planes: Int4Planes, bias: torch.Tensor | None, source: str) -> QuantLinear:
        tensors = {"packed": planes.packed, "scale_zero": _bits(planes.scale_zero)}
        if planes.scale_offset is not None:  # fp32 stored as int32 bits, out of reach of model.to(dtype) too
            tensors["scale_offset"] = planes.scale_offset.float().contiguous().view(torch.int32)
        return cls(planes.in_features, planes.out_features, "int4", tensors, bias,
                   group=planes.group, pad16=planes.pad16, bits=planes.bits, source=source)

    @classmethod
    def from_grouped_codes(cls, g: GroupedInts, bias: torch.Tensor | None, source: str) -> QuantLinear:
        return cls.from_packed(*grouped_codes.pack(g), bias, source)

    @classmethod
    def from_packed(cls, codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, bits: int,
                    bias: torch.Tensor | None, source: str) -> QuantLinear:
        """From codes already in the kernel's layout (grouped_codes.pack / from_blocks)."""
        n, k = scale.shape[0], codes.shape[1] * (2 if bits == 4 else 1)
        # fp32 scales stored as int32 bits, out of reach of model.to(dtype)
        tensors = {"codes": codes, "scale": scale.contiguous().view(torch.int32),
                   "offset": offset.contiguous().view(torch.int32)}
        return cls(k, n, "grouped", tensors, bias, group=native.GROUP, bits=bits, source=source)

    def _grouped(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        return self.codes, self.scale.view(torch.float32), self.offset.view(torch.float32), self.bits

    @classmethod
    def from_int8_rows(cls, codes: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> QuantLinear:
        n, k = codes.shape
        return cls(k, n, "int8", {"codes": codes.contiguous(), "scale": _bits(scale)}, bias, source="int8 per-row")

    def _planes(self) -> Int4Planes:
        # a view of the buffers, kept while they stay the same tensors (`.to(device)` replaces them);
        # under torch.compile (which cannot trace data pointers) made afresh: it is traced once anyway
        if torch.compiler.is_compiling():
            return self._make_planes()
        key = (self.packed.data_ptr(), self.packed.device, self.scale_zero.data_ptr())
        cached = self.__dict__.get("_planes_cache")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_planes_cache"] = (key, self._make_planes())
        return cached[1]

    def _make_planes(self) -> Int4Planes:
        scale_offset = getattr(self, "scale_offset", None)
        return Int4Planes(self.packed, self.scale_zero.view(torch.bfloat16), self.group, self.pad16,
                          self.out_features, self.in_features,
                          None if scale_offset is None else scale_offset.view(torch.float32), self.bits)

    # -- nn.Linear's interface ----------------------------------------------------------------

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in) weight in fp32, dequantized on every read (not cached: keeping it would
        undo the memory saving). For code that reads `.weight` (a fused cross-entropy, analysis);
        the forward pass does not need it for few rows."""
        if self.kind == "int8":
            return self.codes.float() * self.scale.view(torch.bfloat16).float()[:, None]
        if self.kind == "grouped":
            return grouped_codes.dequantize_rows(*self._grouped(), 0, self.out_features)
        return self._planes().dequantize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        rows = x.reshape(-1, self.in_features)
        if x.device.type != "cpu" or rows.shape[0] >= DENSE_ROWS or torch.is_grad_enabled() and x.requires_grad:
            # many rows, another device, or a backward pass to come: the fp32 GEMM on the dequantized weight
            if self.kind == "int8" or x.device.type != "cpu" or x.requires_grad:
                return F.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
            # row chunks: never the whole fp32 weight at once
            out = grouped_codes.dense_matmul(rows.float(), *self._grouped()) if self.kind == "grouped" \
                else self._planes().dense_matmul(rows)
            if self.bias is not None:
                out = out + self.bias.to(out.dtype)
            return out.reshape(*lead, self.out_features)
        if self.kind == "grouped":
            out = native.grouped_matmul(rows.float(), *self._grouped())
        elif self.kind == "int8":
            out = torch.ops.aten._weight_int8pack_mm(rows.to(torch.bfloat16).contiguous(), self.codes,
                                                     self.scale.view(torch.bfloat16)).float()
        else:
            out = self._planes().matmul(rows)
        if self.bias is not None:
            out = out + self.bias
        return out.to(x.dtype).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, " \
               f"weights={self.source}"
