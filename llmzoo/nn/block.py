"""The transformer block: attention + feed-forward with a chosen norm placement.

pre-norm  (GPT-2, LLaMA):  x = x + attn(norm(x));        x = x + mlp(norm(x))
post-norm (Vaswani, BERT): x = norm(x + attn(x));        x = norm(x + mlp(x))
DeepNorm  (DeepNet, GLM-130B): post-norm with the residual x scaled by config.deepnorm_alpha
parallel  (GPT-J, PaLM):   x = x + attn(norm1(x)) + mlp(norm2(x) or norm1(x))
An optional cross-attention sub-layer sits between the two (encoder-decoder decoders), as does RETRO's
chunked cross-attention where config.cross_kind(i) is 'chunked'; where it is 'gated', Flamingo's GATED
XATTN-DENSE runs before the whole block. Both read the memory a forward passes as `cross_states`.
Which mixer (attention, Mamba's SSM, none) and feed-forward (dense, MoE, none) a layer has comes from
the config's per-layer spec; layers other than attention + feed-forward are pre-norm and sequential.
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.nn.attention import Attention
from llmzoo.nn.chunked_cross_attention import ChunkedCrossAttention
from llmzoo.nn.gated_cross_attention import GatedCrossAttentionDense, VisualMemory
from llmzoo.nn.mamba import MambaMixer
from llmzoo.nn.mlp import MLP
from llmzoo.nn.moe import MoE
from llmzoo.nn.norm import make_norm
from llmzoo.nn.rre import RandomRoutedExperts


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int, cross_attention: bool = False,
                 self_attn: nn.Module | None = None) -> None:
        """The layer's parts come from the config's per-layer spec (config.mixer_kind / ffn_kind):
        a token mixer (self-attention, Mamba's SSM, or none) and a feed-forward (dense, MoE, or none).
        self_attn: an injected attention module (DeBERTa's disentangled, XLNet's relative
        attention) used instead of the standard one; it receives `attn_kwargs` from forward."""
        super().__init__()
        self.layer_idx = layer_idx
        self.pre_norm = config.norm_placement == "pre"
        self.parallel = config.parallel_residual
        mixer, ffn = config.mixer_kind(layer_idx), config.ffn_kind(layer_idx)
        if mixer != "none":
            self.attn_norm = make_norm(config)  # the norm before the token mixer, attention or SSM
        if mixer == "attention":
            self.self_attn = self_attn if self_attn is not None else Attention(config, layer_idx)
        elif mixer == "mamba":
            self.mixer = MambaMixer(config, layer_idx)
        if cross_attention:
            self.cross_attn_norm = make_norm(config)
            self.cross_attn = Attention(config, layer_idx, cross=True)
        if config.cross_kind(layer_idx) == "chunked":  # RETRO (Borgeaud et al. 2022): ATTN, CCA, FFW
            self.cca_norm = make_norm(config)
            self.chunked_cross_attn = ChunkedCrossAttention(config, layer_idx)
        if config.cross_kind(layer_idx) == "gated":  # Flamingo (Alayrac et al. 2022): GATED XATTN-DENSE, then the LM layer
            self.gated_cross_attn = GatedCrossAttentionDense.from_config(config)
        if ffn != "none":
            if not (self.parallel and config.parallel_norms == 1):
                self.mlp_norm = make_norm(config)
            if ffn == "rre":  # PanGu-Sigma's Random Routed Experts
                self.mlp = RandomRoutedExperts(config, layer_idx)
            else:
                self.mlp = MoE(config) if ffn == "moe" else MLP(config)
        self.dropout = nn.Dropout(config.dropout)
        self.residual_alpha = config.deepnorm_alpha  # post-norm only (validated); 1.0 but for DeepNorm

    def _memory(self, cross_states, kind: type | None, name: str):
        """cross_states, checked to be what this layer's cross-attention reads (None: RETRO's `.encoded`)."""
        if (kind is None and not hasattr(cross_states, "encoded")) or (kind is not None and not isinstance(cross_states, kind)):
            want = "RETRO's neighbours (Retrieval)" if kind is None else f"Flamingo's visual tokens ({kind.__name__})"
            raise LlmzooError(f"layer {self.layer_idx}: {name} cross-attention reads {want}, got "
                              f"{type(cross_states).__name__}; pass the memory this layer's kind reads")
        return cross_states

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.residual_alpha if self.residual_alpha != 1.0 else x

    def _ff(self, x: torch.Tensor, ffn_kwargs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        # only Random Routed Experts take arguments (token_ids, domain_ids: llmzoo.nn.rre)
        out = self.mlp(x, **ffn_kwargs) if ffn_kwargs and isinstance(self.mlp, RandomRoutedExperts) else self.mlp(x)
        return out if isinstance(out, tuple) else (out, None)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache=None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        attn_kwargs: dict | None = None,
        token_mask: torch.Tensor | None = None,
        ffn_kwargs: dict | None = None,
        cross_states=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the new hidden states and the MoE router logits (None for a dense MLP).
        token_mask (B, T): the new tokens' padding mask, which an SSM mixer needs (attention has `mask`).
        ffn_kwargs: what a Random Routed Experts feed-forward routes by ({token_ids, domain_ids}).
        cross_states: the memory of a 'chunked' or 'gated' layer: RETRO's neighbours (llmzoo.models.retro.Retrieval,
        `.encoded(x)` conditions them on this residual stream) or Flamingo's visual tokens (VisualMemory).
        None: the layer is skipped and the block computes the plain decoder's."""
        extra = attn_kwargs or {}
        if cross_states is not None and hasattr(self, "gated_cross_attn"):
            m = self._memory(cross_states, VisualMemory, "gated")
            x = self.gated_cross_attn(x, m.visual, m.allowed, m.has_media)
        if hasattr(self, "mixer"):
            attn = lambda h: self.dropout(self.mixer(h, cache=cache, token_mask=token_mask))
        else:
            attn = lambda h: self.dropout(self.self_attn(h, mask=mask, is_causal=is_causal, rope=rope, cache=cache, **extra))
        if self.parallel:
            h = self.attn_norm(x)
            ff, router = self._ff(self.mlp_norm(x) if hasattr(self, "mlp_norm") else h, ffn_kwargs)
            return x + attn(h) + self.dropout(ff), router
        if self.pre_norm:
            if hasattr(self, "attn_norm"):
                x = x + attn(self.attn_norm(x))
            if hasattr(self, "cross_attn"):
                x = x + self.dropout(self.cross_attn(self.cross_attn_norm(x), mask=memory_mask, cache=cache, memory=memory))
            if cross_states is not None and hasattr(self, "chunked_cross_attn"):
                neighbours = self._memory(cross_states, None, "chunked").encoded(x)
                x = x + self.dropout(self.chunked_cross_attn(self.cca_norm(x), neighbours))
            if not hasattr(self, "mlp"):  # a mixer-only layer (Mamba)
                return x, None
            ff, router = self._ff(self.mlp_norm(x), ffn_kwargs)
            return x + self.dropout(ff), router
        x = self.attn_norm(self._residual(x) + attn(x))
        if hasattr(self, "cross_attn"):
            x = self.cross_attn_norm(self._residual(x) + self.dropout(self.cross_attn(x, mask=memory_mask, cache=cache, memory=memory)))
        ff, router = self._ff(x, ffn_kwargs)
        return self.mlp_norm(self._residual(x) + self.dropout(ff)), router
