"""BIG-bench JSON tasks: the real task.json files, BIG-bench's own prompt rendering on known examples,
multiple-choice gold and generative exact match on hand-made completions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmzoo.assets import asset_path, is_fetched
from llmzoo.eval.prompt import PromptBuilder
from llmzoo.eval.tasks import get_task
from llmzoo.eval.tasks.bigbench import postprocess

pytestmark = [pytest.mark.asset,
              pytest.mark.skipif(not is_fetched("bigbench"), reason="BIG-bench data not fetched (an optional asset: "
                                 "`python -m llmzoo.assets fetch bigbench` fetches it or says why the index cannot)")]

# Example counts of the bigbench==1.0.0 task.json files (subtasks summed: logical_deduction's
# three/five/seven objects 300 + 500 + 700; arithmetic's 20 subtasks).
SIZES = {"causal_judgment": 190, "date_understanding": 369, "navigate": 1000, "strategyqa": 2290,
         "logical_deduction": 1500, "word_sorting": 1900, "arithmetic": 15023}


def _raw(task: str) -> dict:
    return json.loads(asset_path("bigbench", f"bigbench/benchmark_tasks/{task}/task.json").read_text())


@pytest.mark.parametrize("task", list(SIZES))
def test_sizes(task):
    assert len(get_task(f"bigbench_{task}").docs()) == SIZES[task]


def test_navigate_prompt_and_choices():
    task = get_task("bigbench_navigate")
    doc = task.docs()[0]
    assert doc["input"] == _raw("navigate")["examples"][0]["input"]
    context = PromptBuilder(task, 0).context(doc)
    # task_prefix + "\nQ: " + input + "\nA: " (append_choices_to_input is false); the answer follows " "
    assert str(context) == ("If you follow these instructions, do you return to the starting point?\nQ: Take 1 step. "
                            "Take 2 steps. Take 3 steps. Turn around. Take 6 steps. Turn left.\nA:")
    assert [r.continuation for r in task.requests(doc, context)] == [" True", " False"]
    assert task.gold(doc) == 0  # target_scores {"True": 1, "False": 0}


def test_date_understanding_default_prefixes():
    task = get_task("bigbench_date_understanding")
    doc = task.docs()[0]
    context = str(PromptBuilder(task, 0).context(doc))
    assert context == "\nQ: Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY?\nA:"  # no task_prefix
    assert task.doc_to_choice(doc)[task.gold(doc)] == "05/01/2021"
    assert len(task.doc_to_choice(doc)) == 6


def test_logical_deduction_uses_each_subtasks_prefixes():
    task = get_task("bigbench_logical_deduction")
    docs = task.docs()
    five, three = docs[0], docs[-1]  # subtasks in name order: five_objects, seven_objects, three_objects
    raw = _raw("logical_deduction/three_objects")
    assert three["input"] == raw["examples"][-1]["input"]
    # example_input_prefix "", example_output_prefix " ": the prompt is task_prefix + input
    assert str(PromptBuilder(task, 0).context(three)) == raw["task_prefix"] + three["input"]
    assert str(PromptBuilder(task, 0).context(five)).startswith("The following paragraphs each describe a set of five")
    assert task.fewshot_delimiter == "\n\n"  # few_shot_example_separator


def test_few_shot_examples_are_other_examples_after_the_task_prefix():
    task = get_task("bigbench_navigate")
    doc = task.docs()[0]
    context = str(PromptBuilder(task, 2).context(doc))
    prefix = "If you follow these instructions, do you return to the starting point?"
    assert context.startswith(prefix + "\nQ: ") and context.count(prefix) == 1
    shots = context[len(prefix):].split("\n\nQ: ")  # BIG-bench's default separator "\n" before "\nQ: "
    assert len(shots) == 3 and shots[-1].startswith("Take 1 step.")
    assert all(s.rsplit("\nA: ", 1)[1] in ("True", "False") for s in shots[:2])


def test_word_sorting_generation():
    task = get_task("bigbench_word_sorting")
    doc = task.docs()[0]
    context = str(PromptBuilder(task, 0).context(doc))
    assert context == "Sort the following words alphabetically:\nList: stick gelatine\nSorted:"
    (request,) = task.requests(doc, context)
    assert request.until == ("\n\n",) and request.max_new_tokens == 128
    assert task.score(doc, [[" gelatine stick"]])["exact_match"] == 1.0
    assert task.score(doc, [[" gelatine stick.\n"]])["exact_match"] == 1.0  # punctuation ignored
    assert task.score(doc, [[" stick gelatine"]])["exact_match"] == 0.0


def test_arithmetic_appends_its_choices_and_extracts_the_number():
    task = get_task("bigbench_arithmetic")
    raw = _raw("arithmetic/2_digit_addition")
    doc = next(d for d in task.docs() if d["input"] == "What is 80 plus 29?")
    assert doc["target"] == "109" and doc["format"]["output_regex"] == raw["output_regex"]
    # append_choices_to_input defaults to true: "\n  choice: " + each of a RandomState(42) permutation of
    # the sorted choices (lm-eval 0.3's BigBenchJsonTask), then "\nA: "
    choices = list(np.random.RandomState(42).permutation(sorted(raw["examples"][0]["target_scores"])))
    assert str(PromptBuilder(task, 0).context(doc)) == \
        "\nQ: What is 80 plus 29?" + "".join(f"\n  choice: {c}" for c in choices) + "\nA:"
    assert task.score(doc, [[" 109"]])["exact_match"] == 1.0
    assert task.score(doc, [[" 109.\nQ: What is"]])["exact_match"] == 1.0  # output_regex: the first integer
    assert task.score(doc, [[" 108"]])["exact_match"] == 0.0


@pytest.mark.parametrize("completion, regex, expected", [
    ("  109 \n", None, "109"),
    (" The sum is 109.", r"[-+]?\d+", "109"),
    (" -7 apples", r"[-+]?\d+", "-7"),
    (" none", r"[-+]?\d+", ""),
])
def test_postprocess(completion, regex, expected):
    assert postprocess(completion, regex) == expected
