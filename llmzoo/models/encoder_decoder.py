"""Encoder-decoder transformers: the original Transformer (Vaswani et al. 2017), T5, mT5, UL2, BART, mBART.

One token table is shared by both sides and (tied) by the LM head. Each side is a `Stack` of the
same Block the decoders use; the decoder's blocks add cross-attention over the encoder output.
Families differ in config fields only: T5 is pre-norm RMSNorm with a relative position bias and
no attention scaling (its init absorbs 1/sqrt(d)); BART is post-norm with learned positions
(offset 2) and an embedding LayerNorm; mBART is BART made pre-norm with final norms.
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.models.encoder import check_token_ids
from llmzoo.models.outputs import ModelOutput
from llmzoo.nn.block import Block
from llmzoo.nn.masks import allowed_positions, to_additive
from llmzoo.nn.moe import moe_losses
from llmzoo.nn.norm import make_norm
from llmzoo.nn.position import sinusoidal_table
from llmzoo.nn.relative_position import RelativePositionBias


class TokenEmbedding(nn.Module):
    """The token table both stacks share (and the LM head, when tied)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.scale = config.embed_scale  # BART's scale_embedding: sqrt(d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.tokens(ids)
        return h * torch.tensor(self.scale, dtype=h.dtype) if self.scale is not None else h


def self_attention_mask(*, causal: bool, q_len: int, past: int, attention_mask: torch.Tensor | None,
                        bias: torch.Tensor | None, dtype: torch.dtype,
                        device: torch.device) -> tuple[torch.Tensor | None, bool]:
    """(additive mask or None, is_causal) for one stack's self-attention."""
    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None
    if bias is None and attention_mask is None:
        if not causal or q_len == 1:
            return None, False  # attend to everything (cached)
        if past == 0:
            return None, True  # the kernel's own causal mask
    allowed = allowed_positions(q_len=q_len, kv_len=past + q_len, past=past, causal=causal,
                                attention_mask=attention_mask, device=device)
    return to_additive(allowed, dtype, bias), False


def memory_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive (B, 1, 1, S) mask hiding padded encoder positions from cross-attention."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return to_additive(attention_mask.bool()[:, None, None, :], dtype)


class Stack(nn.Module):
    """One side of the model: positions, embedding norm, blocks, final norm. Takes token embeddings."""

    def __init__(self, config: ModelConfig, n_layers: int, decoder: bool) -> None:
        super().__init__()
        self.config, self.decoder, self.n_layers = config, decoder, n_layers
        if config.position == "learned":
            self.positions = nn.Embedding(config.max_seq_len + config.position_offset, config.d_model)
        elif config.position == "relative_bias":
            self.relative_bias = RelativePositionBias(config, bidirectional=not decoder)
        elif config.position not in ("none", "sinusoidal"):
            raise ConfigError(f"encoder-decoder position {config.position!r} is not supported "
                              f"(learned, sinusoidal, relative_bias or none)")
        self.init_buffers()
        if config.embed_norm:
            self.embed_norm = make_norm(config)
        self.layers = nn.ModuleList(Block(config, i, cross_attention=decoder) for i in range(n_layers))
        self.norm = make_norm(config) if config.final_norm else None
        self.dropout = nn.Dropout(config.dropout)

    def init_buffers(self) -> None:
        if self.config.position == "sinusoidal":  # Vaswani et al. 2017
            table = sinusoidal_table(self.config.max_seq_len, self.config.d_model)
            self.register_buffer("sinusoid", table, persistent=False)

    def forward(self, h: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                memory: torch.Tensor | None = None, memory_attention_mask: torch.Tensor | None = None,
                cache=None, router_logits: list[torch.Tensor] | None = None) -> torch.Tensor:
        """h (B, T, D) token embeddings -> (B, T, D). Decoder: memory (B, S, D) is the encoder output;
        with a cache, h holds only the new tokens and attention_mask covers past + new.
        router_logits: a list that collects each MoE layer's router logits (B, T, E)."""
        config = self.config
        B, T, _ = h.shape
        past = cache.seq_length if cache is not None else 0
        if config.position in ("learned", "sinusoidal") and past + T > config.max_seq_len:
            raise LlmzooError(f"sequence of {past + T} tokens exceeds this model's context of {config.max_seq_len}")
        if hasattr(self, "positions"):
            pos = torch.arange(past, past + T, device=h.device) + config.position_offset
            h = h + self.positions(pos)[None]
        elif hasattr(self, "sinusoid"):
            h = h + self.sinusoid[past : past + T].to(h.dtype)[None]
        if hasattr(self, "embed_norm"):
            h = self.embed_norm(h)
        h = self.dropout(h)
        bias = self.relative_bias(T, past + T, past) if hasattr(self, "relative_bias") else None
        mask, is_causal = self_attention_mask(causal=self.decoder, q_len=T, past=past, attention_mask=attention_mask,
                                              bias=bias, dtype=h.dtype, device=h.device)
        cross_mask = memory_mask(memory_attention_mask, h.dtype) if self.decoder else None
        for layer in self.layers:
            h, router = layer(h, mask=mask, is_causal=is_causal, cache=cache, memory=memory, memory_mask=cross_mask)
            if router is not None and router_logits is not None:
                router_logits.append(router)
        if self.norm is not None:
            h = self.norm(h)
        return self.dropout(h)


class EncoderDecoderLM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.head != "lm":
            raise ConfigError(f"encoder-decoder head {config.head!r} is not supported; use 'lm'")
        self.config = config
        self.embeddings = TokenEmbedding(config)
        self.encoder = Stack(config, config.n_layers, decoder=False)
        self.decoder = Stack(config, config.decoder_layers, decoder=True)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=config.lm_head_bias)
        if config.tie_embeddings:
            self.lm_head.weight = self.embeddings.tokens.weight

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               router_logits: list[torch.Tensor] | None = None) -> torch.Tensor:
        """input_ids (B, S) -> encoder output (B, S, D)."""
        check_token_ids(input_ids, self.config.vocab_size, "input_ids", "vocab_size")
        return self.encoder(self.embeddings(input_ids), attention_mask=attention_mask, router_logits=router_logits)

    def decode(self, decoder_input_ids: torch.Tensor, memory: torch.Tensor, *,
               attention_mask: torch.Tensor | None = None, decoder_attention_mask: torch.Tensor | None = None,
               cache=None, router_logits: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder hidden states (B, T, D) and logits (B, T, V). attention_mask is the encoder's."""
        check_token_ids(decoder_input_ids, self.config.vocab_size, "decoder_input_ids", "vocab_size")
        h = self.decoder(self.embeddings(decoder_input_ids), attention_mask=decoder_attention_mask,
                         memory=memory, memory_attention_mask=attention_mask, cache=cache, router_logits=router_logits)
        logits = self.lm_head(h)
        if self.config.logit_multiplier is not None:
            # T5 with tied embeddings rescales the decoder output by d_model**-0.5 before the head
            # (Mesh TensorFlow); with a bias-free head that is the same as scaling the logits.
            logits = logits * self.config.logit_multiplier
        return h, logits

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: decoder inputs are the labels moved one step right after the start token."""
        start = self.config.decoder_start_token_id
        pad = self.config.pad_token_id
        if start is None or pad is None:
            raise LlmzooError("this config lacks decoder_start_token_id/pad_token_id; pass decoder_input_ids")
        shifted = labels.new_full(labels.shape, start)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == -100, pad)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        encoder_outputs: torch.Tensor | None = None,
        cache=None,
    ) -> ModelOutput:
        """-> ModelOutput(logits (B, T, V), last_hidden_state (decoder), encoder_last_hidden_state).
        encoder_outputs: a precomputed encoder output (B, S, D), so generation encodes once.
        With MoE layers also each side's encoder_/decoder_aux_loss and _z_loss (transformers'
        SwitchTransformers names), and their sums aux_loss and z_loss."""
        if decoder_input_ids is None:
            if labels is None:
                raise LlmzooError("decoder_input_ids (or labels) are required for an encoder-decoder forward")
            decoder_input_ids = self.shift_right(labels)
        memory = encoder_outputs
        routers: dict[str, list[torch.Tensor]] = {"encoder": [], "decoder": []}
        if memory is None:
            if input_ids is None:
                raise LlmzooError("pass input_ids (or encoder_outputs) to the encoder-decoder")
            memory = self.encode(input_ids, attention_mask, router_logits=routers["encoder"])
        h, logits = self.decode(decoder_input_ids, memory, attention_mask=attention_mask,
                                decoder_attention_mask=decoder_attention_mask, cache=cache,
                                router_logits=routers["decoder"])
        out = ModelOutput(logits=logits, last_hidden_state=h, encoder_last_hidden_state=memory)
        for side, logits_of_side in routers.items():
            if logits_of_side:
                for name, loss in moe_losses(self.config, logits_of_side).items():
                    out[f"{side}_{name}"] = loss
                    out[name] = out[name] + loss if name in out else loss
        return out


def build_encoder_decoder(config: ModelConfig) -> nn.Module:
    """The builder `build_model` calls for arch='encoder_decoder'."""
    return EncoderDecoderLM(config)
