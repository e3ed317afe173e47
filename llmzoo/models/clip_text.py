"""CLIP's text tower: a GPT-2-style causal transformer whose representation of a caption is the
final state at its end-of-text token (Radford et al. 2021, section 2.4: "the activations of the
highest layer of the transformer at the [EOS] token are treated as the feature representation").
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.models.encoder import check_token_ids
from llmzoo.nn.block import Block
from llmzoo.nn.embedding import Embeddings
from llmzoo.nn.masks import allowed_positions, to_additive
from llmzoo.nn.norm import make_norm


def eos_positions(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """(B,) index of each row's first EOS token, the rule transformers 5 applies. Configs written
    before transformers knew the tokenizer's EOS id say eos_token_id=2; there OpenAI's own rule
    applies: EOT (49407) is the largest id in CLIP's vocabulary, so argmax of the ids finds it."""
    if eos_token_id == 2:
        return input_ids.to(torch.int).argmax(-1)
    return (input_ids == eos_token_id).to(torch.int).argmax(-1)


class TextTower(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)  # tokens + learned positions
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = make_norm(config)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids (B, T) -> (last hidden states (B, T, D), pooled EOS states (B, D))."""
        c = self.config
        if input_ids.dim() != 2:
            raise LlmzooError(f"input_ids has shape {tuple(input_ids.shape)}, expected (batch, tokens)")
        B, T = input_ids.shape
        if T > c.max_seq_len:
            raise LlmzooError(f"captions of {T} tokens exceed this CLIP's text context of {c.max_seq_len}; "
                              f"truncate them")
        check_token_ids(input_ids, c.vocab_size, "input_ids", "vocab_size")
        if attention_mask is not None and tuple(attention_mask.shape) != (B, T):
            raise LlmzooError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(B, T)}")
        positions = torch.arange(T, device=input_ids.device).expand(B, T)
        h = self.embeddings(input_ids, positions)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):  # causal and hiding padding
            allowed = allowed_positions(q_len=T, kv_len=T, causal=True, attention_mask=attention_mask,
                                        device=h.device)
            mask = to_additive(allowed, h.dtype)
        for layer in self.layers:
            h, _ = layer(h, mask=mask, is_causal=mask is None)
        h = self.norm(h)
        pooled = h[torch.arange(B, device=h.device), eos_positions(input_ids, c.eos_token_id).to(h.device)]
        return h, pooled
