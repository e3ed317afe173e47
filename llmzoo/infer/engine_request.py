"""One request of the continuous-batching engine: what it asks for, and the stream the caller reads.

The engine thread pushes chunks into the request's queue; the caller iterates them (or waits for the
whole result). Text goes out only once it cannot be the start of a stop string, so a stop string is
never half-printed and then taken back.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import torch

from llmzoo.infer.sampling import SamplingConfig

_END = object()


@dataclass
class Chunk:
    token_ids: list[int]  # the tokens this chunk's text came from (may be empty at the end)
    text: str


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (EOS or a stop string), "length" or "cancelled"
    prompt_tokens: int


@dataclass
class Request:
    """Handle of a submitted request: iterate it for Chunks as they are produced, or call result()."""

    prompt_ids: list[int]
    sampling: SamplingConfig
    max_tokens: int
    stop: list[str]
    seed: int | None
    decoder: object = field(repr=False)  # the tokenizer's stream decoder for this request
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    _held: str = ""
    _held_ids: list[int] = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    _error: BaseException | None = None
    generator: torch.Generator | None = field(default=None, repr=False)
    seen: torch.Tensor | None = field(default=None, repr=False)  # tokens so far, for the repetition penalty
    logprobs: int | None = None  # alternatives recorded per token; None: no log-probabilities
    presence_penalty: float = 0.0  # OpenAI's additive penalties on generated tokens (Engine.submit)
    frequency_penalty: float = 0.0
    counts: torch.Tensor | None = field(default=None, repr=False)  # (V,) generated-token counts for them
    constraint: object = field(default=None, repr=False)  # a llmzoo.infer.constrained.TokenConstraint, or None
    # one (logprob, [(token id, logprob), ...]) per entry of token_ids, when logprobs is set
    token_logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list, repr=False)
    logit_bias: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)  # (ids, biases)
    prompt_logprobs: int | None = None  # alternatives per prompt token; None: the prompt is not scored
    # the same entries per prompt token (None for the first), filled while the prompt is prefilled
    prompt_token_logprobs: list[tuple[float, list[tuple[int, float]]] | None] = field(default_factory=list,
                                                                                      repr=False)
    prompt_scored: threading.Event = field(default_factory=threading.Event, repr=False)  # prefill done or ended

    def cancel(self) -> None:
        """Stop generating; the engine frees the request's row at its next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def result(self) -> Completion:
        """Wait for the end and return the whole completion."""
        for _ in self:
            pass
        return Completion(self.text, list(self.token_ids), self.finish_reason or "cancelled", len(self.prompt_ids))

    # --- called by the engine thread -----------------------------------------------------------

    def accept(self, token_id: int) -> bool:
        """Record a new token; True when the request is finished by a stop string or its length."""
        self.token_ids.append(token_id)
        self._held += self.decoder.push(token_id)
        self._held_ids.append(token_id)
        hit = min((self._held.find(s) for s in self.stop if s in self._held), default=-1)
        if hit >= 0:
            self._emit(self._held[:hit])
            return self.finish("stop")
        keep = max((n for s in self.stop for n in range(1, len(s)) if self._held.endswith(s[:n])), default=0)
        self._emit(self._held[:len(self._held) - keep])
        self._held = self._held[len(self._held) - keep:]
        if self.constraint is not None and self.constraint.finished:  # the grammar allows nothing more
            return self.finish("eos")
        return len(self.token_ids) >= self.max_tokens and self.finish("length")

    def finish(self, reason: str, error: BaseException | None = None) -> bool:
        if self.finish_reason is not None:
            return True
        if reason != "stop":
            self._held += self.decoder.flush()
        if reason in ("length", "eos"):
            self._emit(self._held)
        self.finish_reason = "stop" if reason == "eos" else reason
        self._error = error
        self.prompt_scored.set()  # a request cancelled before its prefill ends: nothing more to wait for
        self._queue.put(_END)
        return True

    def _emit(self, text: str) -> None:
        if text or self._held_ids:
            self.text += text
            self._queue.put(Chunk(self._held_ids, text))
            self._held_ids = []
