"""Transformer-XL relative attention with segment-level recurrence (Dai et al. 2019, section 3.3).

A query at position i scores key j (distance i - j >= 0) as

    A_ij = q_i.k_j  (a: content)  + q_i.W_R R_{i-j}  (b: content-dependent position)
         + u.k_j    (c: global content bias) + v.W_R R_{i-j}  (d: global position bias)

with R the sinusoidal encoding of the distance (no absolute positions anywhere), W_R a per-layer
projection, and u, v learned per head. u and v are shared by all layers: the paper writes them
without a layer index and its reference code ties them by default (untie_r=False); sharing also
keeps them out of the per-layer parameters Gopher's published counts are made of.

Terms (b) and (d) are computed once for every distance 0..S-1 and moved into (i, j) order by the
paper's "relative shift" (appendix B), not by a (T, S, d) gather.

The recurrence: each layer's keys/values are computed from [SG(memory) ; h], the memory being the
layer's input over the previous mem_len tokens, detached (stop-gradient). Because keys hold content
only, a KV cache works unchanged for generation: positions enter through the query-side terms.
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.nn.attention import Attention


def xl_sinusoid(distances: torch.Tensor, dim: int) -> torch.Tensor:
    """(N, dim) encoding of integer distances: [sin | cos] halves, as Transformer-XL's PositionalEmbedding."""
    inv_freq = 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float32, device=distances.device) / dim)
    angles = distances.float()[:, None] * inv_freq[None]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """(..., T, S) scores whose column c is distance S-1-c -> scores of key j at column j, for query i
    sitting at key index S-T+i (distance S-T+i-j). Pad one zero column, reread the buffer as (S+1, T),
    drop the first row: each row moves left by T-1-i. Entries for keys after the query (j > S-T+i) are
    wrapped garbage; the causal mask hides them."""
    *lead, T, S = x.shape
    padded = torch.cat((x.new_zeros(*lead, T, 1), x), dim=-1)  # (..., T, S+1)
    return padded.view(*lead, S + 1, T)[..., 1:, :].reshape(*lead, T, S)


class XLPositions(nn.Module):
    """The stack-level part: the u, v biases shared by all layers and R for a forward's distances."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dim = config.d_model
        self.u = nn.Parameter(torch.zeros(config.n_heads, config.hd))  # r_w_bias in the reference code
        self.v = nn.Parameter(torch.zeros(config.n_heads, config.hd))  # r_r_bias

    def forward(self, k_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """R (k_len, d) for distances k_len-1 .. 0 (the order rel_shift expects), u, v."""
        distances = torch.arange(k_len - 1, -1, -1, device=self.u.device)
        return xl_sinusoid(distances, self.dim).to(self.u.dtype), self.u, self.v


class XLRelativeAttention(Attention):
    """Self-attention scored by the four Transformer-XL terms; keys/values also see the memory."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__(config, layer_idx)
        self.r_proj = nn.Linear(config.d_model, self.n_heads * self.head_dim, bias=False)  # W_{k,R}

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None, is_causal: bool = False,
                rope=None, cache=None, xl: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                memory_states: torch.Tensor | None = None, **_) -> torch.Tensor:
        """x (B, T, D). xl: XLPositions' (R, u, v) for all S keys. memory_states (B, M, D): the memory,
        already through this block's pre-attention norm where the block has one."""
        if xl is None:  # a stack that does not pass the positions would silently drop terms (b)-(d)
            raise LlmzooError("Transformer-XL attention needs the stack's relative encodings (xl=...); run it through "
                              "DecoderLM's forward (pipeline parallelism does not pass them yet)")
        B, T, _ = x.shape
        H, KV, hd = self.n_heads, self.n_kv_heads, self.head_dim
        kv_in = x if memory_states is None else torch.cat((memory_states.to(x.dtype), x), dim=1)
        q = self.q_proj(x).view(B, T, H, hd).transpose(1, 2)  # (B, H, T, hd)
        k = self.k_proj(kv_in).view(B, -1, KV, hd).transpose(1, 2)
        v = self.v_proj(kv_in).view(B, -1, KV, hd).transpose(1, 2)
        if cache is not None:
            state = cache.state(("self", self.layer_idx), self._new_state)
            k, v = state.write(k, v, cache.write_position)  # (B, KV, past + T, hd)
        if KV != H:
            k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        R, u, pos_bias = xl
        S = k.shape[2]
        r = self.r_proj(R[-S:]).view(S, H, hd).transpose(0, 1)  # (H, S, hd), distances S-1 .. 0
        content = (q + u[None, :, None].to(q.dtype)) @ k.transpose(-1, -2)  # terms (a) + (c)
        position = rel_shift((q + pos_bias[None, :, None].to(q.dtype)) @ r.transpose(-1, -2)[None])  # (b) + (d)
        scores = (content + position) * (self.scale if self.scale is not None else hd**-0.5)
        if mask is not None:
            scores = scores + mask
        elif is_causal or T > 1:  # the garbage of rel_shift above the diagonal must never be seen
            future = torch.ones(T, S, dtype=torch.bool, device=x.device).triu(S - T + 1)
            scores = scores.masked_fill(future, float("-inf"))
        probs = torch.nn.functional.dropout(scores.float().softmax(-1).to(q.dtype), self.dropout,
                                            training=self.training and self.dropout > 0)
        out = (probs @ v).transpose(1, 2).reshape(B, T, H * hd)
        return self.o_proj(out)


def layer_memory(block: nn.Module, memory: torch.Tensor | None) -> torch.Tensor | None:
    """The memory as the block's attention sees its input: a pre-norm or parallel block normalises the
    residual stream before attention, so the stored layer inputs go through the same norm."""
    if memory is None:
        return None
    if (block.pre_norm or block.parallel) and hasattr(block, "attn_norm"):
        return block.attn_norm(memory)
    return memory


def update_memory(old: torch.Tensor | None, layer_input: torch.Tensor, mem_len: int) -> torch.Tensor:
    """The next segment's memory: the last mem_len layer inputs, detached (the paper's SG(.))."""
    full = layer_input if old is None else torch.cat((old.to(layer_input.dtype), layer_input), dim=1)
    return full[:, -mem_len:].detach()
