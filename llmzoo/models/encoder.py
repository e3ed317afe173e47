"""Encoder-only transformers (BERT, RoBERTa, ALBERT, ELECTRA, DeBERTa) with their heads.

The stack is the same Block the decoders use, attending bidirectionally (Devlin et al. 2019);
families differ only in config fields: post-norm with an embedding LayerNorm (BERT), factorised
embeddings and one shared layer (ALBERT: embed_dim, share_layers), positions that skip padding
(RoBERTa), or an injected attention module (DeBERTa's disentangled attention via attention_type).
XLNet's two-stream attention needs a different stack and lives in models/xlnet.py.
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.models.heads import HEADS, apply_heads, build_heads
from llmzoo.models.outputs import ModelOutput
from llmzoo.nn.block import Block
from llmzoo.nn.embedding import Embeddings
from llmzoo.nn.masks import allowed_positions, to_additive
from llmzoo.nn.norm import make_norm


def check_token_ids(ids: torch.Tensor | None, size: int, what: str, field: str) -> None:
    """One-line LlmzooError for ids outside [0, size) instead of an IndexError deep in nn.Embedding."""
    if ids is None or ids.numel() == 0:
        return
    lo, hi = torch.stack(torch.aminmax(ids)).tolist()  # one device sync per call
    if lo < 0 or hi >= size:
        bad = hi if hi >= size else lo
        raise LlmzooError(f"{what} contains {bad}, outside this model's {field}={size}; "
                          f"check the tokenizer matches the model")


def padding_mask(attention_mask: torch.Tensor | None, q_len: int, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor | None:
    """Additive (B, 1, T, S) mask hiding padded keys, or None when nothing is padded."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    allowed = allowed_positions(q_len=q_len, kv_len=attention_mask.shape[-1], causal=False,
                                attention_mask=attention_mask, device=device)
    return to_additive(allowed, dtype)


class EncoderModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.head not in HEADS:
            raise ConfigError(f"encoder head {config.head!r} is not one of {HEADS}")
        self.config = config
        self.embeddings = Embeddings(config)
        n_blocks = 1 if config.share_layers else config.n_layers
        if config.attention_type == "disentangled":
            from llmzoo.nn.disentangled_attention import DisentangledSelfAttention, RelativeEmbeddings

            self.relative = RelativeEmbeddings(config)
            self.layers = nn.ModuleList(
                Block(config, i, self_attn=DisentangledSelfAttention(config)) for i in range(n_blocks))
        elif config.attention_type == "standard":
            self.layers = nn.ModuleList(Block(config, i) for i in range(n_blocks))
        else:
            raise ConfigError(f"attention_type {config.attention_type!r} is not built by EncoderModel")
        # Pre-norm encoders need a last norm; post-norm ones (BERT) end normalised already.
        self.norm = make_norm(config) if config.final_norm and config.norm_placement == "pre" else None
        build_heads(self, config)
        if config.tie_embeddings and hasattr(self, "lm_head"):
            self.lm_head.weight = self.embeddings.tokens.weight

    def layer(self, i: int) -> Block:
        # ALBERT (Lan et al. 2020): every layer reuses the one block's weights.
        return self.layers[0 if self.config.share_layers else i]

    def default_position_ids(self, input_ids: torch.Tensor | None, B: int, T: int,
                             device: torch.device, past: int = 0) -> torch.Tensor:
        if self.config.positions_skip_padding and input_ids is not None:
            # RoBERTa: real tokens get 0, 1, 2, ... in order; pads get -1, i.e. table row pad_id.
            real = (input_ids != self.config.pad_token_id).long()
            return (real.cumsum(-1) + past) * real - 1
        return torch.arange(past, past + T, device=device).expand(B, T)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        cache=None,
    ) -> ModelOutput:
        """input_ids (B, T) -> ModelOutput(last_hidden_state (B, T, D), head outputs).
        attention_mask (B, past + T): 1 for real tokens, 0 for padding. cache: keys/values of tokens
        before the input (prefix tuning's, llmzoo.peft.prefix_tuning): every token attends to them."""
        config = self.config
        check_token_ids(input_ids, config.vocab_size, "input_ids", "vocab_size")
        check_token_ids(token_type_ids, max(config.type_vocab_size, 1), "token_type_ids", "type_vocab_size")
        ref = input_ids if input_ids is not None else inputs_embeds
        if ref is None:
            raise LlmzooError("pass input_ids (or inputs_embeds) to the encoder")
        B, T = ref.shape[:2]
        device = ref.device
        past = cache.seq_length if cache is not None else 0
        if config.position == "learned" and past + T > config.max_seq_len:
            raise LlmzooError(f"sequence of {past + T} tokens exceeds this model's context of {config.max_seq_len}")
        if attention_mask is not None and tuple(attention_mask.shape) != (B, past + T):
            raise LlmzooError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(B, past + T)}")
        if position_ids is None:
            position_ids = self.default_position_ids(input_ids, B, T, device, past)
        h = self.embeddings(input_ids, position_ids, token_type_ids, inputs_embeds)
        attn_kwargs = None
        if config.attention_type == "disentangled":
            h, mask, attn_kwargs = self.relative.prepare(h, attention_mask)
        else:
            mask = padding_mask(attention_mask, T, h.dtype, device)
        hidden_states = [h] if output_hidden_states else None
        for i in range(config.n_layers):
            h, _ = self.layer(i)(h, mask=mask, cache=cache, attn_kwargs=attn_kwargs)
            if hidden_states is not None:
                hidden_states.append(h)
        if self.norm is not None:
            h = self.norm(h)
        out = ModelOutput(last_hidden_state=h)
        if hidden_states is not None:
            out.hidden_states = tuple(hidden_states)
        out.update(apply_heads(self, config, h))
        return out


def build_encoder(config: ModelConfig) -> nn.Module:
    """The builder `build_model` calls for arch='encoder'."""
    if config.attention_type == "two_stream":
        from llmzoo.models.xlnet import XLNetModel

        return XLNetModel(config)
    return EncoderModel(config)
