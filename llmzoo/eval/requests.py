"""The three request kinds a task asks of a language model (lm-eval-harness's vocabulary).

- `Loglikelihood(context, continuation)`: log P(continuation | context) summed over the
  continuation's tokens, and whether greedy decoding would have produced exactly it
  (lm-eval's `is_greedy`, used by LAMBADA's accuracy).
- `LoglikelihoodRolling(text)`: log P(text) of a whole document, scored in windows of the
  model's context length (perplexity, bits per byte).
- `GenerateUntil(context, until, max_new_tokens, options)`: completions cut at the first stop
  string (exact match, answer extraction, pass@k). Its answer is always a `list[str]` of
  `options.get("n", 1)` completions: greedy by default; `options` may set `temperature`,
  `top_p`, `top_k`, `seed` (as llmzoo.generate takes them) and `n` for pass@k sampling.

A task turns each document into requests; the harness answers them in any order it likes
(batched, sorted by length) and hands the answers back in request order.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Loglikelihood:
    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodRolling:
    text: str


@dataclass(frozen=True)
class GenerateUntil:
    context: str
    until: tuple[str, ...] = ()
    max_new_tokens: int = 256
    # Extra sampling settings (temperature, top_p, n samples for pass@k); empty means greedy.
    options: dict = field(default_factory=dict, hash=False, compare=False)


Request = Loglikelihood | LoglikelihoodRolling | GenerateUntil


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float  # sum over the continuation's tokens, natural log
    is_greedy: bool  # every continuation token is the argmax of its position
    n_tokens: int


@dataclass(frozen=True)
class RollingResult:
    logprob: float  # sum over all tokens of the text, natural log
    n_tokens: int
