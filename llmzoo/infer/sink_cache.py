"""Attention sinks with a rolling cache: generation far past the trained context, in bounded memory.

StreamingLLM (Xiao et al. 2023) observed that a model dumps attention on its first few tokens
("sinks") whatever they say; a plain sliding window evicts them and perplexity explodes, while
keeping them plus a window of the most recent tokens keeps it near the in-window value, without
retraining (the surveys' training-free context extension, with LM-Infinite's Λ-shaped mask).
Positions are those within the cache, not in the text: slot i has position i, so no position ever
exceeds the window. When tokens are evicted, the window's keys shift left by Δ slots and, with
RoPE, are rotated back by Δ positions (a rotation by -Δ composes with the one they carry), so
they read as if computed at their new slots.

    cache = SinkCache.for_model(model, batch_size=1, window=256, sink_tokens=4)
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import AttentionState, Cache
from llmzoo.nn.position import apply_rotary


class SinkCache(Cache):
    """A Cache of `window` slots: the first `sink_tokens` are kept for good, the rest roll. After
    each `advance` at least `headroom` slots are free for the next forward."""

    def __init__(self, batch_size: int, window: int, *, sink_tokens: int = 4, headroom: int = 1,
                 rotary: nn.Module | None = None, interleaved: bool = False, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        if not 0 <= sink_tokens < window - headroom:
            raise LlmzooError(f"attention sinks: {sink_tokens} sink tokens and {headroom} free slots need a window "
                              f"of more than {sink_tokens + headroom} tokens, got {window}")
        super().__init__(batch_size, window, dtype=dtype, device=device)
        self.sink_tokens, self.headroom = sink_tokens, headroom
        self.rotary, self.interleaved = rotary, interleaved
        self.evicted = 0  # tokens dropped so far (the text position of slot i is i, or i + evicted past the sinks)

    @classmethod
    def for_model(cls, model: nn.Module, batch_size: int, window: int, *, sink_tokens: int = 4,
                  headroom: int = 1) -> "SinkCache":
        config = model.config
        if config.arch != "decoder" or config.position not in ("rope", "alibi", "none"):
            raise LlmzooError(f"attention sinks need a decoder with relative positions (RoPE or ALiBi); "
                              f"{config.name} uses {config.position} positions")
        if config.rope_scaling is not None and config.rope_scaling.kind == "dynamic":
            raise LlmzooError("attention sinks keep positions inside the window; dynamic NTK scaling has nothing "
                              "to scale there: load the model without it")
        param = next(model.parameters())
        return cls(batch_size, window, sink_tokens=sink_tokens, headroom=headroom,
                   rotary=getattr(model, "rotary", None), interleaved=config.rope_interleaved,
                   dtype=param.dtype, device=param.device)

    def advance(self, n: int, new_mask: torch.Tensor | None = None) -> None:
        super().advance(n, new_mask)
        excess = self.seq_length - (self.max_len - self.headroom)
        if excess > 0:
            self._evict(excess)

    def _evict(self, delta: int) -> None:
        """Drop the `delta` oldest tokens after the sinks; the rest move left and are re-positioned."""
        start, end = self.sink_tokens, self.seq_length
        if end - delta <= start:
            raise LlmzooError(f"a forward of {delta} tokens does not fit a window of {self.max_len} with "
                              f"{self.sink_tokens} sinks; feed the prompt in smaller chunks")
        for state in self._states.values():
            if isinstance(state, AttentionState):
                k = state.k[:, :, start + delta:end].clone()
                state.k[:, :, start:end - delta] = self._rotate_back(k, delta)
                state.v[:, :, start:end - delta] = state.v[:, :, start + delta:end].clone()
        self.seq_length -= delta
        self.lengths -= delta
        self.evicted += delta

    def _rotate_back(self, k: torch.Tensor, delta: int) -> torch.Tensor:
        if self.rotary is None:  # ALiBi or no positions: keys carry none
            return k
        # A pure rotation by -delta (no YaRN mscale: the keys carry theirs once already).
        angle = -delta * self.rotary.inv_freq.float().to(k.device)  # (rd/2,)
        emb = angle.repeat_interleave(2) if self.interleaved else torch.cat((angle, angle))
        return apply_rotary(k, emb.cos().to(k.dtype)[None, None], emb.sin().to(k.dtype)[None, None], self.interleaved)

    def crop(self, length: int) -> None:
        raise LlmzooError("a rolling (attention-sink) cache cannot roll back: evicted tokens are gone")
