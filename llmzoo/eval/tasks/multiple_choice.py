"""`MultipleChoiceTask`: score each choice's loglikelihood after the prompt (lm-eval's
`output_type: multiple_choice`); acc and acc_norm as llmzoo.eval.metrics defines them."""

from __future__ import annotations

from collections.abc import Sequence

from llmzoo.eval import metrics
from llmzoo.eval.requests import Loglikelihood, LoglikelihoodResult
from llmzoo.eval.tasks import Task


class MultipleChoiceTask(Task):
    """Subclasses define docs(), doc_to_text(doc), doc_to_choice(doc) and gold(doc) (an index)."""

    metrics = ("acc", "acc_norm")

    def doc_to_choice(self, doc: dict) -> list[str]:
        raise NotImplementedError

    def gold(self, doc: dict) -> int:
        raise NotImplementedError

    def doc_to_target(self, doc: dict) -> str:
        return self.doc_to_choice(doc)[self.gold(doc)]

    def fewshot_docs(self) -> Sequence[dict]:
        # Only validation/test splits ship offline: examples come from the evaluated split itself.
        return self.docs()

    @property
    def fewshot_split(self) -> str:  # type: ignore[override]
        return self.eval_split

    def requests(self, doc: dict, context) -> list[Loglikelihood]:
        delim = getattr(context, "target_delimiter", self.target_delimiter)
        return [Loglikelihood(str(context), delim + choice) for choice in self.doc_to_choice(doc)]

    def score(self, doc: dict, results: list[LoglikelihoodResult]) -> dict[str, float]:
        lls = [r.logprob for r in results]
        gold = self.gold(doc)
        out = {"acc": metrics.acc(lls, gold)}
        if "acc_norm" in self.metrics:
            out["acc_norm"] = metrics.acc_norm(lls, self.doc_to_choice(doc), gold)
        return out
