"""Exact match as lm-eval-harness scores generate_until tasks (lm_eval/api/metrics.py
`exact_match_hf_evaluate`, the HF `evaluate` metric): optional regexes removed from both the
prediction and the reference, then lower-casing and punctuation removal if asked, then plain
string equality. With several references (TriviaQA's aliases) a prediction counts when it
matches any of them, as lm-eval's process_results takes the max over a list of golds."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str, regexes_to_ignore: Sequence[str] = (), ignore_case: bool = False,
              ignore_punctuation: bool = False) -> str:
    for pattern in regexes_to_ignore:
        text = re.sub(pattern, "", text)
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = text.translate(_NO_PUNCTUATION)
    return text


def exact_match(prediction: str, references: str | Sequence[str], **options) -> float:
    """1.0 when the normalised prediction equals a normalised reference (options: `normalize`'s)."""
    refs = [references] if isinstance(references, str) else list(references)
    got = normalize(prediction, **options)
    return 1.0 if any(got == normalize(r, **options) for r in refs) else 0.0
