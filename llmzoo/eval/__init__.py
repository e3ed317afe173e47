"""Evaluation: benchmarks as data + prompt formulation + metric, scored like lm-eval-harness.

    import llmzoo
    results = llmzoo.evaluate(model, tokenizer, tasks=["piqa", "arc_easy"], limit=100)
    results["results"]["piqa"]["acc_norm"]

Layout: requests.py (the three request kinds), lm.py (answers them with an llmzoo model),
metrics.py, fewshot.py, tasks/ (the registry and the benchmarks), harness.py (evaluate).
"""

from __future__ import annotations

from typing import Any


def evaluate(*args: Any, **kwargs: Any) -> dict:
    from llmzoo.eval.harness import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
