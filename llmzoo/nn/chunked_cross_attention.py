"""RETRO's chunked cross-attention, CCA (Borgeaud et al. 2022, section 2.4 and figure 2).

The sequence is split into chunks C_1..C_l of m tokens; each chunk's k retrieved neighbours (chunk and
continuation, r tokens each) are encoded to E_u (llmzoo.models.retro). Chunk u's *attending* chunk
C_u^+ is shifted by m - 1: it starts at the last token of C_u and ends one before the last of C_{u+1}
(0-based, tokens u*m + m - 1 .. u*m + 2m - 2). Those tokens cross-attend to E_u, whose retrieval only
read C_u's tokens, all at or before each of them: causality holds. The first m - 1 tokens have no
preceding chunk; there CCA is the identity (output 0 added to the residual stream).

Each attending chunk attends to the k * r neighbour tokens concatenated in time, scored with relative
positional encodings as the paper adds them (the Transformer-XL form of llmzoo.nn.xl_relative, with
per-layer u, v): query i of C_u^+ sits m - 1 + i tokens into C_u, neighbour token j sits j tokens into
its neighbour, which is aligned with C_u (its continuation with C_{u+1}), so their distance is
m - 1 + i - j, in [m - r, 2m - 2].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.nn.xl_relative import xl_sinusoid


class ChunkedCrossAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        d, mem = config.d_model, config.cca_memory_dim or config.d_model
        self.layer_idx, self.m = layer_idx, config.cca_chunk
        self.n_heads, self.head_dim = config.n_heads, config.hd
        inner = self.n_heads * self.head_dim
        self.q_proj = nn.Linear(d, inner, bias=False)
        self.k_proj = nn.Linear(mem, inner, bias=False)
        self.v_proj = nn.Linear(mem, inner, bias=False)
        self.o_proj = nn.Linear(inner, d, bias=False)
        self.r_proj = nn.Linear(d, inner, bias=False)  # W_R of the relative encodings
        self.u = nn.Parameter(torch.zeros(self.n_heads, self.head_dim))  # content bias
        self.v = nn.Parameter(torch.zeros(self.n_heads, self.head_dim))  # position bias

    def forward(self, h: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        """h (B, T, d): the normed residual stream. neighbours (B, L, k, r, mem): E_u of chunk u (L >= T // m
        complete chunks). Returns (B, T, d), zero for the first m - 1 tokens."""
        B, T, d = h.shape
        m, H, hd = self.m, self.n_heads, self.head_dim
        L = T // m  # attending chunks: tokens m-1 .. T-1, the last possibly shorter than m
        if L == 0:
            return torch.zeros_like(h)
        k, r = neighbours.shape[2:4]
        x = F.pad(h[:, m - 1 :], (0, 0, 0, L * m - (T - m + 1)))  # (B, L*m, d): C_u^+ for u < L, padded
        q = self.q_proj(x).view(B * L, m, H, hd).transpose(1, 2)  # (B*L, H, m, hd)
        mem = neighbours[:, :L].reshape(B * L, k * r, -1)  # the k neighbours concatenated in time
        key = self.k_proj(mem).view(B * L, k * r, H, hd).transpose(1, 2)  # (B*L, H, k*r, hd)
        val = self.v_proj(mem).view(B * L, k * r, H, hd).transpose(1, 2)
        scores = (q + self.u[:, None].to(q.dtype)) @ key.transpose(-1, -2)  # content terms
        scores = scores + self._position_scores(q, r, k)
        probs = (scores * hd**-0.5).float().softmax(-1).to(q.dtype)
        out = self.o_proj((probs @ val).transpose(1, 2).reshape(B, L * m, H * hd))[:, : T - m + 1]
        return F.pad(out, (0, 0, m - 1, 0))  # the first m - 1 tokens: identity

    def _position_scores(self, q: torch.Tensor, r: int, k: int) -> torch.Tensor:
        """(B*L, H, m, k*r): (q_i + v) . W_R R_{m-1+i-j}, computed once per distance, then gathered."""
        m, H, hd = self.m, self.n_heads, self.head_dim
        lo = m - r  # the smallest distance, query 0 against neighbour token r - 1
        R = xl_sinusoid(torch.arange(lo, 2 * m - 1, device=q.device), self.r_proj.in_features).to(q.dtype)
        rel = self.r_proj(R).view(-1, H, hd).transpose(0, 1)  # (H, m + r - 1, hd)
        by_distance = (q + self.v[:, None].to(q.dtype)) @ rel.transpose(-1, -2)[None]  # (B*L, H, m, m + r - 1)
        i = torch.arange(m, device=q.device)[:, None]
        j = torch.arange(r, device=q.device).repeat(k)[None]  # each neighbour's token index, k times
        index = (m - 1 + i - j - lo).expand(*by_distance.shape[:2], m, k * r)
        return by_distance.gather(-1, index)
