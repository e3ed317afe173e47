"""Input embeddings: tokens, learned or sinusoidal absolute positions, token types,
an optional LayerNorm (BLOOM, BERT) and a factorised projection E -> H: ALBERT's (of the summed
embeddings, with bias) or OPT-350m's (`project_tokens`: of the token embeddings alone, no bias,
positions then added in H)."""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.nn.norm import make_norm
from llmzoo.nn.position import sinusoidal_table


class Embeddings(nn.Module):
    def __init__(self, config: ModelConfig, *, project_tokens: bool = False) -> None:
        super().__init__()
        E = config.emb_dim
        self.project_tokens = project_tokens and E != config.d_model
        P = config.d_model if self.project_tokens else E  # the width positions, token types and norm work in
        self.scale = config.embed_scale
        self.position_offset = config.position_offset
        self.tokens = nn.Embedding(config.vocab_size, E)
        if config.position == "learned":
            self.positions = nn.Embedding(config.max_seq_len + config.position_offset, P)
        self.sinusoidal_shape = (config.max_seq_len, P) if config.position == "sinusoidal" else None
        self.init_buffers()
        if config.type_vocab_size:
            self.token_types = nn.Embedding(config.type_vocab_size, P)
        if config.embed_norm:
            self.norm = make_norm(config, P)
        if E != config.d_model:
            # ALBERT (Lan et al. 2020): V x E embeddings projected to the hidden size H. OPT-350m
            # (Zhang et al. 2022; transformers' OPTDecoder.project_in) projects tokens only, bias-free.
            self.project = nn.Linear(E, config.d_model, bias=not self.project_tokens)
        self.dropout = nn.Dropout(config.dropout)

    def init_buffers(self) -> None:
        if self.sinusoidal_shape is not None:
            self.register_buffer("sinusoid", sinusoidal_table(*self.sinusoidal_shape), persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        position_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if self.project_tokens:
            h = self.project(h)
        if self.scale is not None:
            h = h * torch.tensor(self.scale, dtype=h.dtype)
        if hasattr(self, "positions"):
            h = h + self.positions(position_ids + self.position_offset)
        elif hasattr(self, "sinusoid"):
            h = h + self.sinusoid[position_ids].to(h.dtype)
        if hasattr(self, "token_types"):
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(position_ids)
            h = h + self.token_types(token_type_ids)
        if hasattr(self, "norm"):
            h = self.norm(h)
        h = self.dropout(h)
        if hasattr(self, "project") and not self.project_tokens:
            h = self.project(h)
        return h
