"""QuantEmbedding: a drop-in for nn.Embedding that keeps a GGUF file's quantized table.

A lookup reads only the rows it needs: it gathers their codes and their per-group scale and
offset, then computes scale * code + offset, exactly the products the file's dequantization
makes (llmzoo.quant.gguf_blocks), so each row equals the fp32 table's row to the bit. The table is
the "grouped" layout of llmzoo.quant.grouped_codes; a tied LM head's QuantLinear holds the same
three tensors, so the matrix is in memory once (49152 x 576 in Q8_0: 30 MB instead of 113 MB fp32
for the embedding plus 30 MB for the head).
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.quant.linear import QuantLinear


class QuantEmbedding(nn.Module):
    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, bits: int,
                 embedding_dim: int, source: str = "") -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = codes.shape[0], embedding_dim
        self.bits, self.source = bits, source
        # scale/offset are fp32 stored as int32 bits (as in QuantLinear), out of reach of model.to(dtype)
        for name, t in (("codes", codes), ("scale", scale), ("offset", offset)):
            self.register_buffer(name, t, persistent=False)  # no float table in the state dict
        # the dtype lookups come out in: follows model.to(dtype) as nn.Embedding's weight would
        self.register_buffer("dtype_probe", torch.zeros(0), persistent=False)

    @classmethod
    def sharing(cls, linear: QuantLinear) -> QuantEmbedding:
        """An embedding whose rows are `linear`'s weight rows (a tied LM head), on the same tensors."""
        if linear.kind != "grouped":
            raise ValueError(f"QuantEmbedding shares only grouped codes, not {linear.kind!r}")
        return cls(linear.codes, linear.scale, linear.offset, linear.bits, linear.in_features, linear.source)

    @property
    def weight(self) -> torch.Tensor:
        """The whole (V, E) table in fp32, made on every read (for code that inspects `.weight`)."""
        return self(torch.arange(self.num_embeddings, device=self.codes.device)).float()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        codes, groups = self.codes.index_select(0, flat), self.scale.shape[1]
        if self.bits == 4:  # two codes a byte, GGUF's order: a group's low nibbles, then its high ones
            codes = codes.view(-1, groups, 16)
            values = torch.cat([codes & 15, codes >> 4], dim=-1).float()
        else:
            values = codes.view(-1, groups, 32).float()
        scale = self.scale.index_select(0, flat).view(torch.float32)
        offset = self.offset.index_select(0, flat).view(torch.float32)
        rows = values * scale[..., None] + offset[..., None]  # the two roundings of the file's dequantization
        return rows.reshape(*ids.shape, self.embedding_dim).to(self.dtype_probe.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, weights={self.source}"
