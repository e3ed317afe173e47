"""BIG-bench JSON tasks (Srivastava et al. 2022, "Beyond the Imitation Game"), as `bigbench_<name>`.

Data: the tasks' own task.json files from the bigbench==1.0.0 sdist (asset bigbench). A JSON
task has `examples` with an `input` and either `target_scores` ({choice: score}, multiple
choice) or `target` (a string or list of strings, generative), plus task-level formatting:
`task_prefix`, `example_input_prefix` (default "\\nQ: "), `example_output_prefix` (default
"\\nA: "), `choice_prefix` (default "\\n  choice: "), `append_choices_to_input` (default true),
`few_shot_example_separator` (default "\\n") and, for generation, `output_regex`.

Formulation. lm-eval 0.4's bigbench tasks (lm_eval/tasks/bigbench/multiple_choice_template_a_yaml
and generate_until_template_yaml) read prompts pre-rendered by BIG-bench into the `inputs` column
of the hails/bigbench HF dataset, which does not ship offline; so the prompt is rendered here from
task.json with BIG-bench's own rules (bigbench/api/json_task.py, also what lm-eval 0.3's
BigBenchJsonTask did): task_prefix once before everything (the description, before any few-shot
examples), then example_input_prefix + input [+ choice_prefix + each choice, in a
np.random.RandomState(42) permutation of the sorted choices, if append_choices_to_input] +
example_output_prefix. The output prefix's trailing space becomes the target delimiter (same
text, and the answer's first token keeps its leading space, as in lm-eval's " " + choice).
- multiple choice (template a): choices = target_scores' keys, gold = the highest-scored one,
  acc (and acc_norm: lm-eval's template only reports acc; the normalised one costs nothing).
- generative (generate_until template): greedy until "\\n\\n" (lm-eval's default stop, the
  few-shot separator), at most 128 new tokens; exact_match against any target, ignoring
  punctuation (the template's metric). The completion is stripped and, where the task sets
  `output_regex` (arithmetic: [-+]?\\d+), reduced to its first match, as BIG-bench's own
  exact_str_match postprocessing does: without it "109." or " 109" never match "109".
Few-shot examples come from the same examples (the only split), seeded, never the document itself.
A task with subtasks (arithmetic: 20 of them, logical_deduction: 3) is all subtasks' examples in
order, each rendered with its own subtask's prefixes, as hails/bigbench's `<task>_zero_shot`.
"""

from __future__ import annotations

import json
import re
from functools import cached_property

from llmzoo.assets import asset_path
from llmzoo.eval.requests import GenerateUntil
from llmzoo.eval.tasks import Task, register_task
from llmzoo.eval.tasks.exact_match import exact_match
from llmzoo.eval.tasks.multiple_choice import MultipleChoiceTask

ASSET = "bigbench"
ROOT = "bigbench/benchmark_tasks"
GEN_STOP = ("\n\n",)
GEN_MAX_NEW_TOKENS = 128  # generate_until_template_yaml: max_gen_toks


def _load(task: str) -> list[dict]:
    """The examples of a task (or of all its subtasks, in name order), each with its formatting."""
    folder = asset_path(ASSET, f"{ROOT}/{task}")
    files = sorted(folder.glob("*/task.json")) or [folder / "task.json"]
    docs: list[dict] = []
    for path in files:
        spec = json.loads(path.read_text(encoding="utf-8"))
        fmt = {"task_prefix": spec.get("task_prefix", ""),
               "input_prefix": spec.get("example_input_prefix", "\nQ: "),
               "output_prefix": spec.get("example_output_prefix", "\nA: "),
               "choice_prefix": spec.get("choice_prefix", "\n  choice: "),
               "append_choices": spec.get("append_choices_to_input", True),
               "separator": spec.get("few_shot_example_separator", "\n"),  # BIG-bench default
               "output_regex": spec.get("output_regex")}
        docs.extend({**example, "format": fmt} for example in spec["examples"])
    return docs


def render(doc: dict) -> str:
    """example_input_prefix + input [+ choices] + example_output_prefix, the trailing space dropped."""
    fmt = doc["format"]
    text = fmt["input_prefix"] + doc["input"]
    if "target_scores" in doc and fmt["append_choices"]:
        import numpy as np

        choices = list(np.random.RandomState(42).permutation(sorted(doc["target_scores"])))
        text += fmt["choice_prefix"] + fmt["choice_prefix"].join(choices)
    return (text + fmt["output_prefix"]).rstrip(" ")


class _BigBench:
    bigbench_task = ""
    eval_split = "default"  # hails/bigbench's split name; the examples are the only split

    @property
    def source(self) -> str:
        return f"bigbench==1.0.0 sdist (asset bigbench): {ROOT}/{self.bigbench_task}"

    @cached_property
    def _docs(self) -> list[dict]:
        return _load(self.bigbench_task)

    def docs(self) -> list[dict]:
        return self._docs

    def fewshot_docs(self) -> list[dict]:
        return self._docs

    @property
    def fewshot_split(self) -> str:
        return self.eval_split

    @property
    def fewshot_delimiter(self) -> str:
        return self._docs[0]["format"]["separator"] if self._docs else "\n"

    def description(self, doc: dict) -> str:
        return doc["format"]["task_prefix"]

    def doc_to_text(self, doc: dict) -> str:
        return render(doc)


class BigBenchMultipleChoice(_BigBench, MultipleChoiceTask):
    def __init__(self, task: str) -> None:
        self.bigbench_task, self.name = task, f"bigbench_{task}"

    def doc_to_choice(self, doc: dict) -> list[str]:
        return list(doc["target_scores"])

    def gold(self, doc: dict) -> int:
        scores = list(doc["target_scores"].values())
        return scores.index(max(scores))


def postprocess(completion: str, output_regex: str | None) -> str:
    """BIG-bench's exact_str_match preparation: strip, then the first match of output_regex if set."""
    text = completion.strip()
    if output_regex:
        found = re.search(output_regex, text)
        text = found.group(0) if found else ""
    return text


class BigBenchGenerate(_BigBench, Task):
    metrics = ("exact_match",)
    output = "generate_until"

    def __init__(self, task: str) -> None:
        self.bigbench_task, self.name = task, f"bigbench_{task}"

    def targets(self, doc: dict) -> list[str]:
        return doc["target"] if isinstance(doc["target"], list) else [doc["target"]]

    def doc_to_target(self, doc: dict) -> str:
        return self.targets(doc)[0]  # the template's doc_to_target: targets[0]

    def requests(self, doc: dict, context) -> list[GenerateUntil]:
        return [GenerateUntil(str(context), GEN_STOP, GEN_MAX_NEW_TOKENS)]

    def score(self, doc: dict, results: list) -> dict[str, float]:
        answer = postprocess(results[0][0], doc["format"]["output_regex"])
        return {"exact_match": exact_match(answer, self.targets(doc), ignore_punctuation=True)}


for _name in ("causal_judgment", "date_understanding", "logical_deduction", "navigate", "strategyqa"):
    register_task(BigBenchMultipleChoice(_name))
for _name in ("arithmetic", "word_sorting"):
    register_task(BigBenchGenerate(_name))
