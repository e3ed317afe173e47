"""Flamingo's GATED XATTN-DENSE layer (Alayrac et al. 2022, section 2.2 and figure 4).

A decoder layer whose config.cross_kind(i) is 'gated' runs one before its block (llmzoo.nn.block), on
the visual tokens the forward passes (`VisualMemory`); it lets text tokens read them:

    x = x + tanh(alpha_xattn) * cross_attention(norm(x), visual)
    x = x + tanh(alpha_dense) * ffw(norm(x))

The alphas start at 0, so at initialisation the layer is the identity and the model computes exactly
what the frozen LM did (the paper's stability argument for training from a pretrained LM). The norms
and feed-forward are the LM's kinds (its ModelConfig: RMSNorm + SwiGLU for a LLaMA, as IDEFICS uses);
the projections are bias-free, keys and values read the visual tokens in their own width.

Masking (section 2.3, "per-image attention"): a text token attends only to the visual tokens of the
most recent image at or before it; tokens with no image before them get no cross-attention output
(zeroed, as transformers' IDEFICS does with its cross_attention_gate), though the gated FFW still runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.nn.mlp import MLP
from llmzoo.nn.norm import make_norm

@dataclass
class VisualMemory:
    """What a forward hands its gated layers (Block's `cross_states`): visual (B, S, visual_dim) and the
    masks of `media_masks`, or all None for text alone (then a gated layer runs its FFW only)."""

    visual: torch.Tensor | None = None
    allowed: torch.Tensor | None = None
    has_media: torch.Tensor | None = None


def media_masks(image_index: torch.Tensor, n_images: int, tokens_per_image: int) -> tuple[torch.Tensor, torch.Tensor]:
    """image_index (B, T): 1-based index of each text token's most recent image, 0 = none yet.
    Returns (allowed (B, 1, T, n_images * tokens_per_image) bool, has_media (B, T) bool). Tokens without
    an image may attend everywhere (their output is zeroed): a row with nothing allowed would make the
    softmax NaN on some backends, and 0 * NaN is NaN, so the identity-at-init property would break."""
    owner = torch.arange(n_images * tokens_per_image, device=image_index.device) // tokens_per_image + 1  # (S,)
    # An index past the images given (an <image> token generated while decoding, with no pixels) reads none.
    has_media = (image_index > 0) & (image_index <= n_images)
    allowed = (image_index[:, :, None] == owner) | ~has_media[:, :, None]  # (B, T, S)
    return allowed[:, None], has_media


class GatedCrossAttentionDense(nn.Module):
    def __init__(self, config: ModelConfig, visual_dim: int, *, n_heads: int | None = None, d_ff: int | None = None,
                 gate: str = "scalar", qk_norm: bool = False) -> None:  # gate: ModelConfig.xattn_gate
        """config: the frozen LM's (width, norm, FFN kind). visual_dim: the visual tokens' width."""
        super().__init__()
        d = config.d_model
        self.n_heads = n_heads or config.n_heads
        self.head_dim = d // self.n_heads
        self.attn_norm = make_norm(config)
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(visual_dim, self.n_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(visual_dim, self.n_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)
        self.q_norm = make_norm(config, self.head_dim) if qk_norm else None  # IDEFICS' qk_layer_norms
        self.k_norm = make_norm(config, self.head_dim) if qk_norm else None
        self.ffn_norm = make_norm(config)
        self.mlp = MLP(config, d_ff or config.d_ff)
        shape = (1,) if gate == "scalar" else (d,)
        self.alpha_attn = nn.Parameter(torch.zeros(shape))  # tanh(0) = 0: the identity at init
        self.alpha_ffn = nn.Parameter(torch.zeros(shape))

    @classmethod
    def from_config(cls, config: ModelConfig) -> "GatedCrossAttentionDense":
        """The layer a 'gated' entry of config.cross_attentions describes (cca_memory_dim: the visual width)."""
        return cls(config, config.cca_memory_dim or config.d_model, n_heads=config.xattn_heads,
                   d_ff=config.xattn_d_ff, gate=config.xattn_gate, qk_norm=config.xattn_qk_norm)

    def forward(self, x: torch.Tensor, visual: torch.Tensor | None = None, allowed: torch.Tensor | None = None,
                has_media: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, d); visual (B, S, visual_dim) or None (text only: the FFW alone); allowed
        (B, 1, T, S) and has_media (B, T) from `media_masks`."""
        if visual is not None:
            x = x + torch.tanh(self.alpha_attn).to(x.dtype) * self._cross_attend(self.attn_norm(x), visual, allowed, has_media)
        return x + torch.tanh(self.alpha_ffn).to(x.dtype) * self.mlp(self.ffn_norm(x))

    def _cross_attend(self, h: torch.Tensor, visual: torch.Tensor, allowed, has_media) -> torch.Tensor:
        B, T, _ = h.shape
        heads = lambda t: t.view(B, t.shape[1], self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, *, hd)
        q, k, v = heads(self.q_proj(h)), heads(self.k_proj(visual)), heads(self.v_proj(visual))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        out = self.o_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))
        return out.masked_fill(~has_media[:, :, None], 0.0) if has_media is not None else out
