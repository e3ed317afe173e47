"""The fine-tuning plug-in contract: a named task builder turns a recipe into data and a loss.

A recipe with `task: NAME` is a fine-tune; the one training loop (llmzoo/train/loop.py) loads the
base model from `model.from`, applies `peft:` if given, then calls the builder registered as NAME:

    builder(recipe, tokenizer, model) -> FinetuneData

- `recipe`: the llmzoo.train.Recipe; the builder reads its own settings from `recipe.data` (a
  mapping, e.g. `data.train`, `data.val`, `data.format`, `data.template`, `data.packing`) and may
  read `recipe.seq_len`, `recipe.seed` and so on. Bad settings or files: raise LlmzooError/ConfigError
  with one line naming the problem (the CLI prints `error: ...`, exit 2).
- `tokenizer`: the base model's tokenizer (llmzoo.tokenizer), or None when the source has none
  and the recipe names no `tokenizer:`.
- `model`: the model that will train (PEFT already applied); for its `config` (vocab, pad id,
  arch), not to be trained by the builder.

FinetuneData holds:

- `task`: an object with `model_inputs(batch) -> dict` (keyword arguments of the model's forward)
  and `loss(outputs, batch) -> Tensor` (a scalar; the loop back-propagates it), the same shape as
  llmzoo/train/task.py's Task. Optional: `token_count(batch) -> int` (tokens the batch trains on,
  for tokens/s; default: the number of elements of `batch["input_ids"]`) and `loss_is_token_mean`
  (True by default: exp(val loss) is reported as a perplexity), `forward(model, batch) -> outputs`
  where a plain `model(**model_inputs(batch))` is not how the task runs its model (ELECTRA's two
  passes; llmzoo/objectives/modeling/train.py), and `uses_every_parameter` (False by default: DDP
  then tolerates parameters a step leaves without gradient), `target_count(batch) -> int` where the
  loss is a mean over a number of targets that varies between batches (SFT's assistant tokens):
  the loop then weights micro-batches and data-parallel ranks so that a step's loss is the mean
  over all its targets, the same however the batch is split (llmzoo/train/engine.py).
- `train` and optional `val`: datasets with `__len__()` (rows) and
  `rows(indices: list[int]) -> dict[str, Tensor]`, the stacked batch of those rows. `rows` must be
  a pure function of `indices` (no hidden state, no randomness of its own): the loop draws the
  indices from a seeded per-epoch shuffle and recomputes batches after a resume or a spike rewind,
  which is how a resumed run repeats its losses bit for bit.

A task that trains a model of its own kind from scratch (RETRO, llmzoo/retro/task.py) registers it
too: `register_task(name, builder, model=OwnModel(build, save))`. Its recipe's `model:` is then the
task's own mapping (no `from:`); the loop calls `build(recipe)` (after seeding) where it would load a
base, and `save(model, directory, recipe)` where it would write the fine-tuned model, and
`llmzoo pretrain` accepts the recipe.

Registering: `register_task("my-task", builder)`. Built-in tasks live in the modules listed in
TASK_MODULES, each calling register_task when imported; `get_task` imports them on demand. A
recipe may also name a task outside llmzoo as `package.module:name`: the module is imported (it
registers `name`; the working directory is searched too), which is how a task defined in a user's
own file reaches `llmzoo finetune`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from llmzoo.errors import ConfigError, LlmzooError

# Modules whose import registers built-in tasks; a module that does not exist (yet) is skipped.
TASK_MODULES: tuple[str, ...] = (
    "llmzoo.finetune.sft",
    "llmzoo.finetune.classification",
    "llmzoo.finetune.seq2seq",
    "llmzoo.finetune.expansion",
    "llmzoo.align.reward_task", "llmzoo.align.dpo_task", "llmzoo.align.ppo_task",
    "llmzoo.retro.task",
)


@runtime_checkable
class FinetuneTask(Protocol):
    def model_inputs(self, batch: dict[str, Tensor]) -> dict[str, Any]: ...

    def loss(self, outputs: Any, batch: dict[str, Tensor]) -> Tensor: ...


@runtime_checkable
class RowDataset(Protocol):
    def __len__(self) -> int: ...

    def rows(self, indices: list[int]) -> dict[str, Tensor]: ...


@dataclass
class FinetuneData:
    task: FinetuneTask
    train: RowDataset
    val: RowDataset | None = None

    def check(self, name: str) -> None:
        """A one-line LlmzooError when a builder returned something the loop cannot use."""
        for attr in ("model_inputs", "loss"):
            if not callable(getattr(self.task, attr, None)):
                raise LlmzooError(f"fine-tuning task {name!r}: its task object has no {attr}() method")
        for split, data in (("train", self.train), ("val", self.val)):
            if data is None and split == "val":
                continue
            if not (hasattr(data, "__len__") and callable(getattr(data, "rows", None))):
                raise LlmzooError(f"fine-tuning task {name!r}: its {split} data needs __len__() and rows(indices)")
        if len(self.train) == 0:
            raise LlmzooError(f"fine-tuning task {name!r}: the training data has no rows; check data.train")


Builder = Callable[[Any, Any, Any], FinetuneData]


@dataclass(frozen=True)
class OwnModel:
    """The model of a task that trains from scratch: build(recipe) -> nn.Module from the recipe's
    `model:` mapping, save(model, directory, recipe) -> the directory its own loader reads."""

    build: Callable[[Any], Any]
    save: Callable[[Any, Any, Any], Any]


_TASKS: dict[str, Builder] = {}
_OWN_MODELS: dict[str, OwnModel] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_task(name: str, builder: Builder, *, model: OwnModel | None = None) -> Builder:
    """Register `builder` under `name` (case-insensitive; `_` and `-` alike); a later
    registration of the same name replaces the earlier one. Returns the builder (usable as a
    decorator body: `register_task("x", build_x)`). model: the task's own from-scratch model."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a fine-tuning task needs a non-empty name, got {name!r}")
    if not callable(builder):
        raise ConfigError(f"fine-tuning task {name!r}: the builder must be callable(recipe, tokenizer, model)")
    _TASKS[_key(name)] = builder
    if model is not None:
        _OWN_MODELS[_key(name)] = model
    else:
        _OWN_MODELS.pop(_key(name), None)
    return builder


def own_model(name: str) -> OwnModel | None:
    """The from-scratch model of task `name` (registered with model=...), or None: it loads a base."""
    get_task(name)  # imports `module:name` / the built-in modules, as the builder's lookup does
    return _OWN_MODELS.get(_key(name.strip().rpartition(":")[2]))


def _import_builtin() -> None:
    for module in TASK_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # the module exists but something it imports does not: a real error
                raise


def task_names() -> list[str]:
    """The registered task names (built-in modules imported first)."""
    _import_builtin()
    return sorted(_TASKS)


def get_task(name: str) -> Builder:
    """The builder registered as `name`, or `module:name` after importing `module`; unknown names
    are a one-line LlmzooError with the closest known names."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"task must be the name of a fine-tuning task, got {name!r}")
    module, sep, short = name.strip().rpartition(":")
    if sep:
        _search_working_directory()
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise LlmzooError(f"task {name!r}: cannot import module {module!r} ({e.name} not found)") from None
        name = short
    builder = _TASKS.get(_key(name))
    if builder is None:
        _import_builtin()
        builder = _TASKS.get(_key(name))
    if builder is None:
        raise LlmzooError(f"unknown fine-tuning task {name!r}{_hint(name, sorted(_TASKS))}")
    return builder


def _search_working_directory() -> None:
    """`task: my_tasks:name` finds my_tasks.py in the working directory, as `python -m` would, also
    when llmzoo runs as its console script (whose sys.path starts at the script's own directory)."""
    import os
    import sys

    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)


def _hint(name: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(_key(name), list(known), n=3, cutoff=0.5)
    if close:
        return f"; did you mean: {', '.join(close)}?"
    return f"; known tasks: {', '.join(known)}" if known else "; no fine-tuning tasks are registered"
