"""Metrics, defined as lm-eval-harness defines them (lm_eval/api/task.py, lm_eval/api/metrics.py).

Multiple choice, from the summed loglikelihood ll_i of each choice i given the prompt:
- acc: 1 if argmax_i ll_i is the gold choice.
- acc_norm: 1 if argmax_i ll_i / len(choice_i) is gold, where len is the choice's length in
  *characters* (Python `len` of the choice text, without the target delimiter) -- not tokens,
  so the normalisation does not depend on the tokenizer.
Ties go to the first choice (numpy's argmax), so a planted tie is scored the same way.

Rolling loglikelihood of whole documents (natural-log sums ll_d):
- word_perplexity = exp(-sum ll_d / sum words_d), words counted as lm-eval does: pieces of
  `re.split(r"\\s+", text)`;
- byte_perplexity = exp(-sum ll_d / sum bytes_d) (UTF-8 bytes);
- bits_per_byte = -sum ll_d / sum bytes_d / ln 2.
LAMBADA's perplexity is exp(-mean ll_d) over documents (lm-eval's `perplexity` aggregation).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first one on ties (as numpy.argmax)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def acc(lls: Sequence[float], gold: int) -> float:
    return 1.0 if argmax(lls) == gold else 0.0


def acc_norm(lls: Sequence[float], choices: Sequence[str], gold: int) -> float:
    # max(.., 1): an empty choice would divide by zero (numpy gives inf there; same ranking for ll < 0).
    return 1.0 if argmax([ll / max(len(c), 1) for ll, c in zip(lls, choices, strict=True)]) == gold else 0.0


def count_words(text: str) -> int:
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def perplexity(lls: Sequence[float]) -> float:
    """exp of minus the mean loglikelihood over documents (lm-eval's `perplexity`)."""
    return math.exp(-sum(lls) / len(lls))


def weighted_perplexity(lls: Sequence[float], weights: Sequence[int]) -> float:
    """exp(-sum ll / sum weight): word_perplexity with word counts, byte_perplexity with bytes."""
    return math.exp(-sum(lls) / sum(weights))


def bits_per_byte(lls: Sequence[float], n_bytes: Sequence[int]) -> float:
    return -sum(lls) / sum(n_bytes) / math.log(2)
