"""Turning next-token logits into tokens: greedy, temperature, top-k, top-p, repetition penalty."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from llmzoo.errors import LlmzooError


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.0  # 0: greedy (argmax)
    top_k: int | None = None  # keep the k most likely tokens (Fan et al. 2018)
    top_p: float | None = None  # nucleus: smallest set with cumulative prob >= p (Holtzman et al. 2020)
    repetition_penalty: float = 1.0  # CTRL (Keskar et al. 2019): divide positive logits of seen tokens

    def __post_init__(self) -> None:
        # NaN passes every `<` comparison, and a NaN or infinite temperature turns the probabilities
        # into NaNs that torch.multinomial rejects with a RuntimeError: check finiteness first.
        for name in ("temperature", "top_p", "repetition_penalty"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                      or not math.isfinite(value)):
                raise LlmzooError(f"{name} must be a finite number, got {value!r}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, numbers.Integral)):
            raise LlmzooError(f"top_k must be a whole number >= 1, got {self.top_k!r}")
        if self.temperature < 0:
            raise LlmzooError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise LlmzooError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise LlmzooError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise LlmzooError(f"repetition_penalty must be > 0 (1 is none), got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def check_generation_args(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None,
                          repetition_penalty: float) -> SamplingConfig:
    """The SamplingConfig of a generate() call, after checking every argument a user passes (one
    LlmzooError naming the argument, never a RuntimeError from torch.multinomial later)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
        raise LlmzooError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    return SamplingConfig(temperature, top_k, top_p, repetition_penalty)


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """logits (B, V); seen (B, V) bool of tokens already in the sequence."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set logits outside the top-k / nucleus to -inf (at least one token always survives)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token if the tokens before it already reach top_p
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_tokens(
    logits: torch.Tensor,
    config: SamplingConfig,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (B, V) -> token ids (B,)."""
    logits = penalised_logits(logits, config, seen)
    if config.greedy:
        return logits.argmax(dim=-1)
    return torch.multinomial(_probs(logits, config), num_samples=1, generator=generator).squeeze(-1)


def penalised_logits(logits: torch.Tensor, config: SamplingConfig, seen: torch.Tensor | None = None) -> torch.Tensor:
    """logits (..., V) in float32 after the repetition penalty: what greedy takes the argmax of."""
    logits = logits.float()
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, config.repetition_penalty)
    return logits


def sampling_probs(logits: torch.Tensor, config: SamplingConfig, seen: torch.Tensor | None = None) -> torch.Tensor:
    """The distribution (..., V) that next_tokens samples from (penalty, temperature, top-k, top-p),
    for code that needs the probabilities themselves (speculative decoding's accept/reject rule).
    Sampling only: greedy (temperature 0) has no distribution, it takes the argmax."""
    if config.greedy:
        raise ValueError("greedy decoding has no sampling distribution; use penalised_logits(...).argmax(-1)")
    return _probs(penalised_logits(logits, config, seen), config)


def _probs(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    return filter_logits(logits / config.temperature, config.top_k, config.top_p).softmax(dim=-1)
