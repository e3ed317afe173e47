"""The generation cache: a typed, per-layer state that a model reads and writes but never advances.

Each layer that keeps something across forwards asks the cache for its own state object, created
on first use by a factory the layer passes (`Cache.state`): self-attention keeps its keys and
values (`AttentionState`), cross-attention the encoder memory's keys and values, computed once
(`CrossAttentionState`). Later kinds (an SSM's recurrent state, an adapter's prefix) add a class
with the same small protocol (`LayerState`): select rows (`reorder`, beams), and keep a prefix of
the sequence (`crop`, speculative rollback) where the state grows with it.

The cache owns the bookkeeping, and only the caller that runs forwards moves it:
- `seq_length`: slots that hold tokens. A host-side int, so reading it is no device sync; a forward
  writes its T new tokens at slots seq_length .. seq_length + T - 1.
- `lengths` (B,): each row's real tokens (left padding excluded), from which positions continue.
After a forward the caller calls `advance(T, new_mask)`. A forward may therefore write slots that
are then not kept (speculative decoding verifies k drafted tokens in one forward and keeps the
accepted ones), and the model stays a pure function of (inputs, cache contents).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Protocol

import torch
from torch import nn


class LayerState(Protocol):
    def reorder(self, index: torch.Tensor) -> "LayerState": ...  # rows `index`, a new state

    def rows(self, start: int, end: int) -> "LayerState": ...  # a view: writes reach this state

    def nbytes(self) -> int: ...  # memory it holds


class AttentionState:
    """Keys and values of one self-attention layer, preallocated (B, KV, max_len, hd) so decoding
    writes in place instead of concatenating."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k, self.v = k, v

    @classmethod
    def empty(cls, batch: int, n_kv_heads: int, head_dim: int, max_len: int, dtype: torch.dtype,
              device: torch.device) -> "AttentionState":
        shape = (batch, n_kv_heads, max_len, head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    def write(self, k: torch.Tensor, v: torch.Tensor, start: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, KV, T, hd) keys/values at slots start.. ; return every slot up to their end.
        A (B,) tensor `start` (a StaticCache's: each row at its own length) writes by index and
        returns all max_len slots, so every decode step has the same shapes (the attention mask
        hides the empty slots)."""
        if isinstance(start, torch.Tensor):
            slots = start[:, None] + torch.arange(k.shape[2], device=k.device)  # (B, T)
            index = slots[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
            self.k.scatter_(2, index, k)
            self.v.scatter_(2, index, v)
            return self.k, self.v
        end = start + k.shape[2]
        if end > self.k.shape[2]:
            raise ValueError(f"KV cache is full: {end} tokens > max_len {self.k.shape[2]}")
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]

    def reorder(self, index: torch.Tensor) -> "AttentionState":
        return AttentionState(self.k.index_select(0, index), self.v.index_select(0, index))

    def rows(self, start: int, end: int, slots: int | None = None) -> "AttentionState":
        """Rows start:end (and only the first `slots` slots, if given) as a view: writes reach this state."""
        return AttentionState(self.k[start:end, :, :slots], self.v[start:end, :, :slots])

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2

    def prefix(self, index: torch.Tensor, end: int) -> "AttentionState":
        """A copy of rows `index`, slots :end (a scratch cache that leaves this one untouched)."""
        return AttentionState(self.k[index, :, :end], self.v[index, :, :end])


class CrossAttentionState:
    """An encoder-decoder layer's keys/values of the encoder output, set by the first decoder step."""

    def __init__(self, k: torch.Tensor | None = None, v: torch.Tensor | None = None) -> None:
        self.k, self.v = k, v

    def reorder(self, index: torch.Tensor) -> "CrossAttentionState":
        if self.k is None:
            return CrossAttentionState()
        return CrossAttentionState(self.k.index_select(0, index), self.v.index_select(0, index))

    def rows(self, start: int, end: int) -> "CrossAttentionState":
        return CrossAttentionState(*(None, None) if self.k is None else (self.k[start:end], self.v[start:end]))

    def nbytes(self) -> int:
        return 0 if self.k is None else self.k.numel() * self.k.element_size() * 2


class SSMState:
    """A Mamba layer's recurrent state (llmzoo.nn.mamba): the last conv_kernel - 1 inputs of its causal
    convolution (B, D_inner, K - 1) and the SSM state h (B, D_inner, N). Its size does not grow with
    the sequence, and it is overwritten in place by each forward, so it cannot go back: `tokens` counts
    what has been folded in, and a forward on a cache whose seq_length differs (a speculative rollback,
    `Cache.crop`) is refused by the layer instead of continuing from the wrong state."""

    def __init__(self, conv: torch.Tensor, ssm: torch.Tensor, tokens: list[int] | None = None) -> None:
        self.conv, self.ssm = conv, ssm
        self._tokens = tokens if tokens is not None else [0]  # shared with row views, which write through

    @classmethod
    def empty(cls, batch: int, inner: int, conv_kernel: int, state_size: int, dtype: torch.dtype,
              device: torch.device) -> "SSMState":
        # The recurrence runs in fp32 (as the reference's scan does), whatever the activations' dtype.
        return cls(torch.zeros(batch, inner, conv_kernel - 1, dtype=dtype, device=device),
                   torch.zeros(batch, inner, state_size, dtype=torch.float32, device=device))

    @property
    def tokens(self) -> int:
        return self._tokens[0]

    @tokens.setter
    def tokens(self, n: int) -> None:
        self._tokens[0] = n

    def reorder(self, index: torch.Tensor) -> "SSMState":
        return SSMState(self.conv.index_select(0, index), self.ssm.index_select(0, index), [self.tokens])

    def rows(self, start: int, end: int) -> "SSMState":
        return SSMState(self.conv[start:end], self.ssm[start:end], self._tokens)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.conv, self.ssm))

    def prefix(self, index: torch.Tensor, end: int) -> "SSMState":
        if end < self.tokens:
            raise ValueError(f"an SSM state holds all {self.tokens} tokens folded together; it cannot be cut to {end}")
        return SSMState(self.conv[index].clone(), self.ssm[index].clone(), [self.tokens])


StateFactory = Callable[[int, int, torch.dtype, torch.device], LayerState]  # (batch, max_len, dtype, device)


class Cache:
    """Per-layer states plus the sequence bookkeeping; created by the code that generates and passed
    into every forward (the model holds no generation state)."""

    def __init__(self, batch_size: int, max_len: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        self.batch_size, self.max_len = batch_size, max_len
        self.dtype, self.device = dtype, torch.device(device)
        self.seq_length = 0
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        self._states: dict[Hashable, LayerState] = {}

    @classmethod
    def for_model(cls, model: nn.Module, batch_size: int, max_len: int, dtype: torch.dtype | None = None) -> "Cache":
        param = next(model.parameters())
        return cls(batch_size, max_len, dtype=dtype or param.dtype, device=param.device)

    static = False  # a StaticCache's shapes never change (compiled decoding)

    @property
    def write_position(self) -> int:
        """Where the next forward writes (a StaticCache gives a tensor, read inside a compiled graph)."""
        return self.seq_length

    def state(self, key: Hashable, create: StateFactory) -> LayerState:
        """The state under `key` (e.g. ("self", layer index)), made by `create` on first use."""
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = create(self.batch_size, self.max_len, self.dtype, self.device)
        return state

    def nbytes(self) -> int:
        """Bytes the layers' states hold (created on each layer's first forward)."""
        return sum(state.nbytes() for state in self._states.values())

    def advance(self, n: int, new_mask: torch.Tensor | None = None) -> None:
        """The last forward's n new tokens are kept; new_mask (B, n) marks which of them are real."""
        if self.seq_length + n > self.max_len:
            raise ValueError(f"KV cache is full: {self.seq_length + n} tokens > max_len {self.max_len}")
        self.seq_length += n
        self.lengths += n if new_mask is None else new_mask.sum(dim=1).to(self.lengths.dtype)

    def crop(self, length: int) -> None:
        """Keep the first `length` slots (speculative rollback); rows lose the dropped tokens from
        their lengths (they are real tokens of every row: drafts, not padding)."""
        if not 0 <= length <= self.seq_length:
            raise ValueError(f"cannot crop a cache of {self.seq_length} tokens to {length}")
        self.lengths -= self.seq_length - length
        self.seq_length = length

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (beam search: the surviving beams' histories)."""
        self._states = {key: state.reorder(index) for key, state in self._states.items()}
        self.lengths = self.lengths.index_select(0, index)
        self.batch_size = int(index.numel())

    def rows(self, start: int, end: int) -> "Cache":
        """Rows start:end as a cache of their own whose writes reach this one (states that do not
        exist yet are created here first, so a later forward on the view fills this cache)."""
        view = _RowView(self, start, end)
        view.seq_length, view.lengths = self.seq_length, self.lengths[start:end]
        return view

    def scratch_rows(self, index: torch.Tensor, max_len: int) -> "Cache":
        """A new cache holding a copy of rows `index`, slots :max_len: forwards on it leave this one
        as it is (the evaluator runs many continuations on one context's keys/values)."""
        scratch = Cache(int(index.numel()), max_len, dtype=self.dtype, device=self.device)
        scratch._states = {key: state.prefix(index, max_len) for key, state in self._states.items()}
        scratch.seq_length, scratch.lengths = self.seq_length, self.lengths.index_select(0, index)
        return scratch


class StaticCache(Cache):
    """A cache whose tensors keep their shapes for the whole generation, for a compiled decode step
    (llmzoo.infer.compiled) and continuous batching (llmzoo.infer.engine): row b's forward writes at
    slot `write_start[b]` (a tensor, not an int, so the graph does not change from step to step, and
    rows of one batch may be at different lengths) and attends over all max_len slots, `key_mask`
    (B, max_len) saying which hold real tokens. Supported by decoders whose masks depend only on slot order and
    padding (causal, sliding window, RoPE/learned/no positions); `supports(config)` says which."""

    static = True

    def __init__(self, batch_size: int, max_len: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(batch_size, max_len, dtype=dtype, device=device)
        self.key_mask = torch.zeros(batch_size, max_len, dtype=torch.bool, device=self.device)
        self.write_start = torch.zeros(batch_size, dtype=torch.long, device=self.device)

    @staticmethod
    def supports(config) -> bool:
        return (config.arch == "decoder" and config.position in ("rope", "learned", "none") and not config.share_layers
                and not config.has_mixer("mamba"))  # an SSM state has no slots a key_mask could hide

    @property
    def write_position(self) -> torch.Tensor:
        return self.write_start

    def new_positions(self, q_len: int, new_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, T) positions of the next forward's tokens: each row continues its own count of real
        tokens, so left padding shifts nothing."""
        if new_mask is None:
            return self.lengths[:, None] + torch.arange(q_len, device=self.device)
        return self.lengths[:, None] + (new_mask.long().cumsum(-1) - 1).clamp_min(0)

    def advance(self, n: int, new_mask: torch.Tensor | None = None) -> None:
        start = self.seq_length
        super().advance(n, new_mask)
        self.key_mask[:, start:start + n] = True if new_mask is None else new_mask.bool()
        self.write_start.fill_(self.seq_length)

    def crop(self, length: int) -> None:
        super().crop(length)
        self.key_mask[:, length:] = False
        self.write_start.fill_(length)

    def reorder(self, index: torch.Tensor) -> None:
        super().reorder(index)
        self.key_mask = self.key_mask.index_select(0, index)

    def advance_rows(self, active: torch.Tensor) -> None:
        """Rows where `active` (B,) is True keep the one token the last forward wrote for them;
        the others (idle slots of a continuous batch) keep nothing."""
        slot = self.write_start.clamp_max(self.max_len - 1)[:, None]
        self.key_mask.scatter_(1, slot, self.key_mask.gather(1, slot) | active[:, None])
        self.write_start += active.to(self.write_start.dtype)
        self.lengths += active.to(self.lengths.dtype)

    def reset_row(self, row: int) -> None:
        """Empty one row for a new sequence (its stale keys/values are masked, then overwritten)."""
        self.key_mask[row] = False
        self.write_start[row] = 0
        self.lengths[row] = 0

    def rows(self, start: int, end: int, slots: int | None = None) -> "StaticCache":
        """Rows start:end as a StaticCache whose writes and bookkeeping reach this one (prefilling
        one request of a continuous batch). slots=L: only the first L slots, so attention reads the
        part of a long cache the rows have filled, not all max_len (the engine's eager steps); every
        row's next write must fall below L."""
        view = StaticCache.__new__(StaticCache)
        Cache.__init__(view, end - start, slots or self.max_len, dtype=self.dtype, device=self.device)
        view._states = {key: _state_rows(state, start, end, slots) for key, state in self._states.items()}
        view._parent_span = (self, start, end, slots)
        view.key_mask, view.write_start = self.key_mask[start:end, :slots], self.write_start[start:end]
        # Rows of a view start at the first row's slot (one row when the engine prefills a request);
        # read on the host by the scheduling code, never inside a forward.
        view.lengths, view.seq_length = self.lengths[start:end], int(self.write_start[start])
        return view

    def state(self, key: Hashable, create: StateFactory) -> LayerState:
        span = getattr(self, "_parent_span", None)
        if span is not None and key not in self._states:  # a row view: the state lives in the parent
            parent, start, end, slots = span
            self._states[key] = _state_rows(parent.state(key, create), start, end, slots)
        return super().state(key, create)


def _state_rows(state: LayerState, start: int, end: int, slots: int | None) -> LayerState:
    """A view of rows start:end; a self-attention state's also cut to its first `slots` slots."""
    if slots is None or not isinstance(state, AttentionState):
        return state.rows(start, end)
    return state.rows(start, end, slots)


class _RowView(Cache):
    def __init__(self, parent: Cache, start: int, end: int) -> None:
        super().__init__(end - start, parent.max_len, dtype=parent.dtype, device=parent.device)
        self._parent, self._span = parent, (start, end)

    def state(self, key: Hashable, create: StateFactory) -> LayerState:
        if key not in self._states:
            self._states[key] = self._parent.state(key, create).rows(*self._span)
        return self._states[key]


class LayerView:
    """A cache seen through one layer index: with shared layers (ALBERT-style) one module serves
    every layer, and each layer index still needs its own state."""

    def __init__(self, cache: Cache, layer_idx: int) -> None:
        self.cache, self.layer_idx = cache, layer_idx

    @property
    def seq_length(self) -> int:
        return self.cache.seq_length

    def state(self, key: Hashable, create: StateFactory) -> LayerState:
        kind, _ = key
        return self.cache.state((kind, self.layer_idx), create)
