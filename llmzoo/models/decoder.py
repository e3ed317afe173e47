"""Decoder-only stack (GPT and everything after it, Mamba's SSM stack, hybrids) with an optional LM head.

Each layer is a Block built from the config's per-layer spec (config.mixer_kind / ffn_kind)."""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import LayerView
from llmzoo.models.context import build_context, default_position_ids, static_context
from llmzoo.models.outputs import ModelOutput
from llmzoo.nn.block import Block
from llmzoo.nn.embed_grad_shrink import shrink_embedding_gradient
from llmzoo.nn.embedding import Embeddings
from llmzoo.nn.linear_cross_entropy import linear_cross_entropy
from llmzoo.nn.moe import moe_losses
from llmzoo.nn.norm import make_norm
from llmzoo.nn.position import RotaryEmbedding, alibi_slopes
from llmzoo.nn.query_layer import TopQueryLayer
from llmzoo.nn.relative_position import RelativePositionBias
from llmzoo.nn.xl_relative import XLPositions, XLRelativeAttention, layer_memory, update_memory


class DecoderLM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Factorised embeddings (OPT-350m): V x E tokens projected to d_model, and back before the head.
        self.embeddings = Embeddings(config, project_tokens=True)
        self.project_out = nn.Linear(config.d_model, config.emb_dim, bias=False) if config.emb_dim != config.d_model else None
        if config.position == "rope":
            self.rotary = RotaryEmbedding(config)
        if config.position == "relative_bias":
            # Learned causal bucketed bias (T5's scheme, Raffel et al. 2020) shared by all layers.
            self.relative_bias = RelativePositionBias(config, bidirectional=False)
        if config.position == "xl_relative":
            # Transformer-XL (Dai et al. 2019): u, v shared by all layers; each attention has its own W_R.
            self.xl_positions = XLPositions(config)
        self.init_buffers()
        if config.share_layers:
            shared = Block(config, 0)
            self.layers = nn.ModuleList([shared])
        else:
            self.layers = nn.ModuleList(Block(config, i, self_attn=self._self_attention(i)) for i in range(config.n_layers))
        self.norm = make_norm(config) if config.final_norm else None
        self.top_query = TopQueryLayer(config) if config.top_query_layer else None  # PanGu-alpha
        self.lm_head = None
        if config.head == "lm":
            self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=config.lm_head_bias)
            if config.tie_embeddings:
                self.lm_head.weight = self.embeddings.tokens.weight
        elif config.head != "none":
            raise LlmzooError(f"decoder head {config.head!r} is not supported; use 'lm' or 'none'")

    def init_buffers(self) -> None:
        if self.config.position == "alibi":
            slopes = alibi_slopes(self.config.n_heads, self.config.alibi_max_bias)
            if self.config.alibi_scaled:  # the kernel scales q.k only, so pre-scale the bias here
                slopes = slopes * (self.config.attn_scale if self.config.attn_scale is not None else self.config.hd**-0.5)
            self.register_buffer("alibi_slopes", slopes, persistent=False)

    def _self_attention(self, i: int) -> nn.Module | None:
        xl = self.config.position == "xl_relative" and self.config.mixer_kind(i) == "attention"
        return XLRelativeAttention(self.config, i) if xl else None

    def layer(self, i: int) -> Block:
        return self.layers[0 if self.config.share_layers else i]

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache=None,
        prefix_lengths: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        output_hidden_states: bool = False,
        targets: torch.Tensor | None = None,
        mems: tuple[torch.Tensor, ...] | None = None,
        domain_ids: torch.Tensor | None = None,
    ) -> ModelOutput:
        """input_ids (B, T) -> logits (B, T, V). attention_mask (B, past + T): 1 = real token.
        With a cache, only the new tokens are passed; `logits_to_keep=n` computes the last n.
        targets (B, T): the token each position should predict (already shifted; -100 = skip);
        with them `loss` is the mean cross-entropy, computed without materialising the logits
        (llmzoo.nn.linear_cross_entropy), and `logits` is not returned.
        mems (Transformer-XL, config.mem_len > 0): each layer's input over the previous tokens, as the
        last forward returned them in `out.mems`; attention_mask then covers mems + T tokens.
        domain_ids (B,) or (B, T): each sequence's (token's) domain, which PanGu-Sigma's Random Routed Experts
        layers route by (llmzoo.nn.rre); a model of one domain needs none."""
        config = self.config
        ref = input_ids if input_ids is not None else inputs_embeds
        B, T = ref.shape[:2]
        device = ref.device
        if getattr(cache, "static", False):  # fixed shapes for compiled decoding; attention_mask: (B, T) new tokens
            return self._static_forward(input_ids, attention_mask, position_ids, cache, inputs_embeds, logits_to_keep)
        past = cache.seq_length if cache is not None else 0
        mem = self._check_mems(mems, cache, B)
        past += mem  # the memory's tokens precede the new ones as a cache's would
        if attention_mask is not None and attention_mask.shape[-1] != past + T:
            raise LlmzooError(f"attention_mask covers {attention_mask.shape[-1]} tokens but the cache holds "
                              f"{past} and {T} are new; pass a mask over all {past + T}")
        if past + T > config.max_seq_len and (config.position == "learned" or config.top_query_layer):
            raise LlmzooError(f"sequence of {past + T} tokens exceeds this model's context of {config.max_seq_len}")
        if position_ids is None:
            position_ids = default_position_ids(attention_mask, B, T, past, device)
        h = shrink_embedding_gradient(self.embeddings(input_ids, position_ids, inputs_embeds=inputs_embeds),
                                      config.embed_grad_scale)  # GLM-130B
        ctx = build_context(
            config, batch=B, q_len=T, past=past, dtype=h.dtype, device=device, position_ids=position_ids,
            attention_mask=attention_mask, prefix_lengths=prefix_lengths, document_ids=document_ids,
            rotary=getattr(self, "rotary", None), alibi_slopes=getattr(self, "alibi_slopes", None),
            score_bias=self.relative_bias(T, past + T, past) if hasattr(self, "relative_bias") else None,
        )
        xl = self.xl_positions(past + T) if hasattr(self, "xl_positions") else None
        new_mems = [] if config.mem_len > 0 else None
        hidden_states = [h] if output_hidden_states else None
        router_logits = []
        token_mask = attention_mask[:, -T:] if attention_mask is not None else None  # the new tokens' (SSM layers)
        if domain_ids is not None and "rre" not in (config.ffns or ()):
            raise LlmzooError(f"domain_ids route Random Routed Experts (PanGu-Sigma); model {config.name!r} has none")
        ffn_kwargs = {"token_ids": input_ids, "domain_ids": domain_ids}  # what RRE layers route by
        for i in range(config.n_layers):
            block = self.layer(i)
            xl_kwargs = None
            if xl is not None:
                xl_kwargs = {"xl": xl, "memory_states": layer_memory(block, mems[i] if mems else None)}
                if new_mems is not None:
                    new_mems.append(update_memory(mems[i] if mems else None, h, config.mem_len))
            h, router = block(h, mask=ctx.masks[config.layer_kind(i)], is_causal=ctx.is_causal,
                              rope=ctx.rope, cache=LayerView(cache, i) if config.share_layers and cache is not None else cache,
                              token_mask=token_mask, attn_kwargs=xl_kwargs, ffn_kwargs=ffn_kwargs)
            if router is not None:
                router_logits.append(router)
            if hidden_states is not None:
                hidden_states.append(h)
        h = self._final(h, position_ids, ctx, cache)
        out = ModelOutput(last_hidden_state=h)
        if new_mems is not None:
            out.mems = tuple(new_mems)
        if hidden_states is not None:
            out.hidden_states = tuple(hidden_states)
        if router_logits:
            out.update(moe_losses(config, router_logits, token_mask))  # aux_loss (load balance), z_loss
        if targets is not None:
            if self.lm_head is None:
                raise LlmzooError("targets need a language-model head; this model has none")
            out.loss = linear_cross_entropy(h, self.lm_head.weight, targets, bias=self.lm_head.bias,
                                            scale=config.logit_multiplier)
        elif self.lm_head is not None:
            out.logits = self._logits(h, logits_to_keep)
        return out

    def _check_mems(self, mems, cache, batch: int) -> int:
        """The memory's length; a LlmzooError for mems this model or call cannot take."""
        if mems is None:
            return 0
        c = self.config
        if c.position != "xl_relative" or c.mem_len == 0:
            raise LlmzooError(f"mems is Transformer-XL's recurrence memory; model {c.name!r} has "
                              f"position={c.position!r}, mem_len={c.mem_len}: set position='xl_relative' and mem_len > 0")
        if cache is not None:
            raise LlmzooError("pass either mems (segment-level recurrence) or a generation cache, not both")
        if len(mems) != c.n_layers or any(m.shape[0] != batch or m.shape[1] != mems[0].shape[1] for m in mems):
            raise LlmzooError(f"mems must be {c.n_layers} tensors (B={batch}, M, d_model) of one length M, as out.mems returns")
        return mems[0].shape[1]

    def _final(self, h: torch.Tensor, position_ids: torch.Tensor, ctx, cache) -> torch.Tensor:
        """The final norm, PanGu-alpha's query layer, then project_out (as transformers' OPTDecoder: its
        last_hidden_state is E-wide)."""
        h = self.norm(h) if self.norm is not None else h
        if self.top_query is not None:
            h = self.top_query(h, position_ids, mask=ctx.masks["global"], is_causal=ctx.is_causal, rope=ctx.rope,
                               cache=cache)
        return self.project_out(h) if self.project_out is not None else h

    def _logits(self, h: torch.Tensor, logits_to_keep: int) -> torch.Tensor:
        logits = self.lm_head(h[:, -logits_to_keep:] if logits_to_keep else h)
        return logits * self.config.logit_multiplier if self.config.logit_multiplier is not None else logits

    def _static_forward(self, input_ids, new_mask, position_ids, cache, inputs_embeds, logits_to_keep) -> ModelOutput:
        """A forward on a StaticCache: only tensors decide what it computes (no host-side lengths),
        so a compiled decode step is one graph for the whole generation."""
        T = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        if position_ids is None:
            position_ids = cache.new_positions(T, new_mask)
        h = shrink_embedding_gradient(self.embeddings(input_ids, position_ids, inputs_embeds=inputs_embeds),
                                      self.config.embed_grad_scale)
        ctx = static_context(self.config, cache, q_len=T, new_mask=new_mask, dtype=h.dtype, position_ids=position_ids,
                             rotary=getattr(self, "rotary", None))
        for i in range(self.config.n_layers):
            h, _ = self.layer(i)(h, mask=ctx.masks[self.config.layer_kind(i)], is_causal=False, rope=ctx.rope, cache=cache)
        h = self._final(h, position_ids, ctx, cache)
        out = ModelOutput(last_hidden_state=h)
        if self.lm_head is not None:
            out.logits = self._logits(h, logits_to_keep)
        return out
