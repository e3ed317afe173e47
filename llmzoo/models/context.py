"""Per-forward attention context: position ids, RoPE tables and one mask per layer kind.

Computed once per forward and shared by all layers, so a 30-layer model builds its
masks once, not 30 times.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmzoo.config import ModelConfig
from llmzoo.nn.masks import allowed_positions, to_additive
from llmzoo.nn.position import alibi_bias


@dataclass
class AttentionContext:
    masks: dict[str, torch.Tensor | None]  # layer kind -> additive mask (or None)
    is_causal: bool  # True when the kernel may use its own causal mask (no explicit mask)
    rope: tuple[torch.Tensor, torch.Tensor] | None


def default_position_ids(
    attention_mask: torch.Tensor | None, batch: int, q_len: int, past: int, device: torch.device
) -> torch.Tensor:
    """Positions count real tokens only, so a left-padded prompt gets the same positions
    as the unpadded one (batched generation equals one-by-one)."""
    if attention_mask is None:
        return torch.arange(past, past + q_len, device=device).expand(batch, q_len)
    positions = attention_mask.long().cumsum(-1) - 1
    positions = positions.clamp_min(0)
    return positions[:, past : past + q_len]


def build_context(
    config: ModelConfig,
    *,
    batch: int,
    q_len: int,
    past: int,
    dtype: torch.dtype,
    device: torch.device,
    position_ids: torch.Tensor,
    causal: bool = True,
    attention_mask: torch.Tensor | None = None,
    prefix_lengths: torch.Tensor | None = None,
    document_ids: torch.Tensor | None = None,
    rotary=None,
    alibi_slopes: torch.Tensor | None = None,
    score_bias: torch.Tensor | None = None,
    n_layers: int | None = None,
) -> AttentionContext:
    kv_len = past + q_len
    rope = rotary(position_ids, dtype) if rotary is not None else None
    if attention_mask is not None and past == 0 and bool(attention_mask.all()):
        # No padding: let the kernel take its fast path. Checked (one host sync) only for a forward
        # without a past, i.e. prefill or training; a cached decode step with a mask has padding anyway
        # and must not wait on the device every token.
        attention_mask = None
    kinds = {config.layer_kind(i) for i in range(n_layers or config.n_layers)}
    if config.top_query_layer:
        kinds.add("global")  # PanGu-alpha's query layer attends over the whole (causal) context
    plain = (attention_mask is None and prefix_lengths is None and document_ids is None
             and alibi_slopes is None and score_bias is None)
    masks: dict[str, torch.Tensor | None] = {}
    is_causal = False
    for kind in kinds:
        window = config.sliding_window if kind == "local" else None
        if plain and (window is None or kv_len <= window):
            if not causal or q_len == 1:
                masks[kind] = None  # attend to everything cached
                continue
            if past == 0:
                masks[kind] = None
                is_causal = True
                continue
        allowed = allowed_positions(
            q_len=q_len, kv_len=kv_len, past=past, causal=causal, window=window,
            attention_mask=attention_mask, prefix_lengths=prefix_lengths,
            document_ids=document_ids, device=device,
        )
        bias = score_bias  # learned relative bias (T5 buckets), (1, H, T, S)
        if alibi_slopes is not None:
            q_idx = torch.arange(past, kv_len, device=device)
            alibi = alibi_bias(alibi_slopes.to(device), q_idx, torch.arange(kv_len, device=device))
            bias = alibi if bias is None else bias + alibi
        masks[kind] = to_additive(allowed, dtype, bias)
    return AttentionContext(masks=masks, is_causal=is_causal, rope=rope)


def static_context(config: ModelConfig, cache, *, q_len: int, new_mask: torch.Tensor | None, dtype: torch.dtype,
                   position_ids: torch.Tensor, rotary=None) -> AttentionContext:
    """The context of a forward on a StaticCache (llmzoo.infer.cache), from tensors only: queries sit
    at slots write_start.., keys are all max_len slots, valid where the cache holds a real token or
    this forward writes one, and causal by slot. Same shapes at every decode step, no host sync."""
    device = cache.key_mask.device
    slots = cache.write_start[:, None] + torch.arange(q_len, device=device)  # (B, T): rows at their own lengths
    keys = torch.arange(cache.max_len, device=device)  # (S,)
    new = torch.ones(cache.batch_size, q_len, dtype=torch.bool, device=device) if new_mask is None else new_mask.bool()
    valid = cache.key_mask.scatter(1, slots, new)  # (B, S)
    causal = keys <= slots[:, :, None]  # (B, T, S)
    allowed = (valid[:, None, :] & causal) | (keys == slots[:, :, None])  # a query sees itself
    masks: dict[str, torch.Tensor | None] = {}
    for kind in {config.layer_kind(i) for i in range(config.n_layers)} | ({"global"} if config.top_query_layer else set()):
        window = config.sliding_window if kind == "local" else None
        kind_allowed = allowed if window is None else allowed & ((slots[:, :, None] - keys) < window)
        masks[kind] = to_additive(kind_allowed[:, None], dtype)  # (B, 1, T, S)
    rope = rotary(position_ids, dtype) if rotary is not None else None
    return AttentionContext(masks=masks, is_causal=False, rope=rope)
