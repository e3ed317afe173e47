"""PanGu-alpha's top query layer (Zeng et al. 2021, section 2.2).

On top of the transformer stack (after its final LayerNorm) sits one more layer shaped like a pre-LN
block, except that its attention query is not the hidden state: it is a learned embedding of the
position, a table of its own (`query_embeddings`, max_seq_len x d_model). The entry at position t
is trained as the query that asks for the token at t + 1, so it "explicitly induces the expected
output" (the paper's words); keys and values are the stack's output, attended causally.

    x   = h + attn(query = p_t, keys/values = LN1(h))
    out = x + mlp(LN2(x))

As PanGu-alpha's MindSpore code (QueryLayer): the query embedding is not normalised, the residual is
the stack's output h, and no norm follows the layer (the LM head reads `out`).
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.nn.attention import Attention
from llmzoo.nn.mlp import MLP
from llmzoo.nn.norm import make_norm


class TopQueryLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.query_embeddings = nn.Embedding(config.max_seq_len, config.d_model)
        self.attn_norm = make_norm(config)
        # layer index n_layers: its own key in a KV cache, after the stack's layers 0 .. n_layers - 1
        self.self_attn = Attention(config, config.n_layers)
        self.mlp_norm = make_norm(config)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, h: torch.Tensor, position_ids: torch.Tensor, *, mask: torch.Tensor | None = None,
                is_causal: bool = False, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache=None) -> torch.Tensor:
        """h (B, T, D): the stack's normalised output; position_ids (B, T): the tokens' positions."""
        query = self.query_embeddings(position_ids)  # (B, T, D): depends on the position only
        attn = self.self_attn(self.attn_norm(h), mask=mask, is_causal=is_causal, rope=rope, cache=cache, query=query)
        x = h + self.dropout(attn)
        return x + self.dropout(self.mlp(self.mlp_norm(x)))
