"""One attention module for every family: MHA, MQA and GQA (via n_kv_heads), self or cross.

The projections (q_proj, k_proj, v_proj, o_proj: Hugging Face names, so converters
are near-identity key maps) are kept apart from the kernel, which takes one
additive mask that already holds causal/padding/window masking and any score bias
(ALiBi, T5 relative bias). That keeps positional schemes out of this file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.infer.cache import AttentionState, CrossAttentionState
from llmzoo.nn.fused import can_fuse, fused_linear
from llmzoo.nn.position import apply_rotary


def attention_kernel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None,
    is_causal: bool,
    scale: float | None,
    softcap: float | None = None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v for q (B, H, T, hd) and k, v (B, KV, S, hd)."""
    n_rep = q.shape[1] // k.shape[1]
    if softcap is None:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal and mask is None,
            scale=scale, enable_gqa=n_rep > 1,
        )
    # Eager path for score transforms SDPA cannot express (Gemma 2 soft-capping).
    if n_rep > 1:
        k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
    scores = (q @ k.transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    scores = softcap * torch.tanh(scores / softcap)
    if mask is not None:
        scores = scores + mask
    elif is_causal:
        T, S = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool, device=q.device).triu(S - T + 1), float("-inf"))
    probs = F.dropout(scores.float().softmax(-1).to(q.dtype), dropout, training=dropout > 0)
    return probs @ v


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int, cross: bool = False) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.cross = cross
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.kv_heads, config.hd
        d, hd = config.d_model, config.hd
        self.q_proj = nn.Linear(d, self.n_heads * hd, bias=config.qkv_bias)
        self.k_proj = nn.Linear(d, self.n_kv_heads * hd, bias=config.qkv_bias)
        self.v_proj = nn.Linear(d, self.n_kv_heads * hd, bias=config.qkv_bias)
        self.o_proj = nn.Linear(self.n_heads * hd, d, bias=config.attn_out_bias)
        self.scale = config.attn_scale
        if config.attn_scale_inverse_layer:
            self.scale = (self.scale if self.scale is not None else self.head_dim**-0.5) / (layer_idx + 1)
        self.softcap = config.attn_logit_softcap
        self.dropout = config.attn_dropout
        self.rope_interleaved = config.rope_interleaved
        self.fuse_projections = False  # training may set it: q, k, v as one GEMM (llmzoo.nn.fused)
        # Per-layer extra attention over learned prompt keys/values, added to the output: set by
        # llmzoo.peft.adaption_prompt (LLaMA-Adapter); called with this module and the rotated queries.
        self.prompt_attention: nn.Module | None = None

    def _self_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.fuse_projections and can_fuse(self.q_proj, self.k_proj, self.v_proj):
            return fused_linear(x, (self.q_proj, self.k_proj, self.v_proj))
        return self.q_proj(x), self.k_proj(x), self.v_proj(x)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache=None,
        memory: torch.Tensor | None = None,
        query: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D). memory (B, S, D): the encoder output, for cross-attention.
        query (B, T, D): what the queries are projected from instead of x, keys and values still from x
        (PanGu-alpha's top query layer, llmzoo.nn.query_layer)."""
        B, T, _ = x.shape
        if self.cross:
            q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
            k, v = self._cross_kv(memory, cache)
        else:
            q, k, v = self._self_qkv(x) if query is None else (self.q_proj(query), self.k_proj(x), self.v_proj(x))
            q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
            k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, hd)
            v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
            if rope is not None:
                q = apply_rotary(q, *rope, interleaved=self.rope_interleaved)
                k = apply_rotary(k, *rope, interleaved=self.rope_interleaved)
            if cache is not None:
                state = cache.state(("self", self.layer_idx), self._new_state)
                k, v = state.write(k, v, cache.write_position)  # (B, KV, past + T, hd)
        out = attention_kernel(
            q, k, v, mask=mask, is_causal=is_causal, scale=self.scale, softcap=self.softcap,
            dropout=self.dropout if self.training else 0.0,
        )
        out = self.o_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))
        if self.prompt_attention is not None and not self.cross:
            out = out + self.prompt_attention(self, q)
        return out

    def _new_state(self, batch: int, max_len: int, dtype: torch.dtype, device: torch.device) -> AttentionState:
        return AttentionState.empty(batch, self.n_kv_heads, self.head_dim, max_len, dtype, device)

    def _cross_kv(self, memory: torch.Tensor | None, cache) -> tuple[torch.Tensor, torch.Tensor]:
        # Encoder keys/values are computed once per generation and kept in the cache.
        state = cache.state(("cross", self.layer_idx), lambda *_: CrossAttentionState()) if cache is not None else None
        if state is not None and state.k is not None:
            return state.k, state.v
        if memory is None:
            raise ValueError("cross-attention needs the encoder output (memory)")
        B, S, _ = memory.shape
        k = self.k_proj(memory).view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(memory).view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if state is not None:
            state.k, state.v = k, v
        return k, v
