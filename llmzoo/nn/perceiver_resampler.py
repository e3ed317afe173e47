"""Flamingo's Perceiver Resampler (Alayrac et al. 2022, "Flamingo: a Visual Language Model for Few-Shot
Learning", section 2.1 and figure 5).

A vision encoder gives a variable number of patch features per image; the resampler turns them into a
fixed number of visual tokens: `n_latents` learned queries cross-attend, `depth` times, to the
concatenation [visual features; latents] (the paper concatenates the latents to the keys and values
so they can also attend to each other), each attention followed by a feed-forward, both residual.
Output: (B, n_latents, D), in the vision encoder's width D.

Layout and defaults follow the paper's pseudo-code (pre-LayerNorm on features and latents, bias-free
projections, a 4x bias-free FFW); transformers' IdeficsPerceiverResampler (an open Flamingo
reproduction) is the same computation, with ReLU in the FFW and optional q/k LayerNorms (the
`activation` and `qk_norm` options here). The paper's learned time embeddings for video frames are
not implemented: one image is one frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.nn.activation import get_activation


class PerceiverAttention(nn.Module):
    """Latents attend to [features; latents]."""

    def __init__(self, dim: int, n_heads: int, head_dim: int, *, qk_norm: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        self.context_norm = nn.LayerNorm(dim, eps=eps)
        self.latents_norm = nn.LayerNorm(dim, eps=eps)
        self.q_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * head_dim, dim, bias=False)
        # Per-head q/k LayerNorms (IDEFICS' qk_layer_norms_perceiver, for training stability).
        self.q_norm = nn.LayerNorm(head_dim, eps=eps) if qk_norm else None
        self.k_norm = nn.LayerNorm(head_dim, eps=eps) if qk_norm else None

    def forward(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """features (B, S, D), latents (B, L, D) -> (B, L, D)."""
        B, L, _ = latents.shape
        features, latents = self.context_norm(features), self.latents_norm(latents)
        kv_input = torch.cat([features, latents], dim=1)  # (B, S + L, D)
        heads = lambda x: x.view(B, x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, *, hd)
        q, k, v = heads(self.q_proj(latents)), heads(self.k_proj(kv_input)), heads(self.v_proj(kv_input))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v)  # no mask: every latent sees every feature
        return self.o_proj(out.transpose(1, 2).reshape(B, L, self.n_heads * self.head_dim))


class PerceiverFeedForward(nn.Module):
    """LayerNorm -> Linear -> activation -> Linear, no biases (the paper's FFW)."""

    def __init__(self, dim: int, hidden: int, activation: str, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)
        self.act = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.up_proj(self.norm(x))))


class PerceiverResampler(nn.Module):
    def __init__(self, dim: int, *, n_latents: int = 64, depth: int = 6, n_heads: int = 8, head_dim: int = 64,
                 ff_mult: int = 4, activation: str = "gelu", qk_norm: bool = False, eps: float = 1e-5) -> None:
        """dim: the vision features' width, which the latents and the output share."""
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_latents, dim))
        self.layers = nn.ModuleList(
            nn.ModuleDict(dict(attn=PerceiverAttention(dim, n_heads, head_dim, qk_norm=qk_norm, eps=eps),
                               ffn=PerceiverFeedForward(dim, ff_mult * dim, activation, eps=eps)))
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=eps)

    @property
    def n_latents(self) -> int:
        return self.latents.shape[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, S, D) from a vision encoder -> visual tokens (B, n_latents, D)."""
        latents = self.latents.to(features.dtype).expand(features.shape[0], -1, -1)
        for layer in self.layers:
            latents = latents + layer["attn"](features, latents)
            latents = latents + layer["ffn"](latents)
        return self.norm(latents)
