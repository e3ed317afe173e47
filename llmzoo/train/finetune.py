"""What the one loop needs for a fine-tuning recipe (`task:` set): the base model from
`model.from` with `peft:` applied, the task's data and loss (llmzoo.finetune registry), and the
outputs a finished run leaves (a peft-format adapter and/or a model directory llmzoo.load reads).

The loop itself (llmzoo/train/loop.py) is the pretraining one: the same schedule, checkpoints,
exact resume, spike rewinds, progress, metrics and plots.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.train.recipe import Recipe


class FinetuneTask:
    """A registry task (model_inputs + loss) in the shape the Engine drives: batches arrive whole
    from the task's datasets (make_batch passes them on), each data-parallel rank reads its own rows."""

    corrupts = False

    def __init__(self, name: str, task: Any) -> None:
        self.name = name
        self.task = task
        # DDP must look for parameters without gradients when a task leaves some unused (a head
        # it does not train); frozen (PEFT) parameters are not DDP's concern either way.
        self.uses_every_parameter = bool(getattr(task, "uses_every_parameter", False))
        self.loss_is_token_mean = bool(getattr(task, "loss_is_token_mean", True))
        # targets per batch, where the task's loss is a mean over a varying number (engine weights)
        self.target_count = getattr(task, "target_count", None)

    def make_batch(self, rows: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        return rows

    def split(self, batch: dict[str, torch.Tensor], rank: int, ranks: int) -> dict[str, torch.Tensor]:
        return batch

    def token_count(self, batch: dict[str, torch.Tensor]) -> int:
        count = getattr(self.task, "token_count", None)
        if count is not None:
            return int(count(batch))
        ids = batch.get("input_ids")
        return int(ids.numel()) if torch.is_tensor(ids) else 0

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        forward = getattr(self.task, "forward", None)  # a task with its own way of running the model
        outputs = forward(model, batch) if forward is not None else model(**self.task.model_inputs(batch))
        return self.task.loss(outputs, batch)


def base_source(recipe: Recipe) -> str:
    return str(recipe.model["from"])


def load_base(recipe: Recipe) -> nn.Module:
    """The base model in fp32 (llmzoo.load's resolution of model.from), with the recipe's other
    model.* fields applied to its config (weights unchanged: e.g. RoPE scaling for longer contexts)."""
    import llmzoo
    from llmzoo.finetune.registry import own_model

    own = own_model(recipe.task)
    if own is not None:  # a task that trains its own kind of model from scratch (RETRO)
        return own.build(recipe).float().train()
    source = base_source(recipe)
    model = llmzoo.load(source, dtype=torch.float32)
    changes = {k: v for k, v in recipe.model.items() if k != "from"}
    # model.head / model.n_labels add a task head, which the checkpoint may lack (new_head.py)
    head_changes = {k: changes.pop(k) for k in ("head", "n_labels") if k in changes}
    if changes:
        from llmzoo.models.build import build_model

        try:
            config = model.config.replace(**changes)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.* changes to {source!r}: {e}") from None
        changed = build_model(config)
        missing, unexpected = changed.load_state_dict(model.state_dict(), strict=False)
        if missing or unexpected:
            raise ConfigError(f"model.* changes to {source!r} change its parameters ({(missing or unexpected)[0]}); "
                              f"a fine-tune may change only settings that keep the weights (e.g. rope_scaling)")
        changed.tokenizer_source, changed.source = model.tokenizer_source, model.source
        model = changed
    if head_changes:
        from llmzoo.finetune.new_head import attach_head

        attach_head(model, head_changes.get("head", model.config.head), head_changes.get("n_labels", model.config.n_labels))
    model.train()
    return model


def apply_peft(model: nn.Module, recipe: Recipe) -> None:
    if recipe.peft is None:
        return
    from llmzoo import peft

    options = dict(recipe.peft)
    method = options.pop("method")
    peft.apply(model, method, **options)


def trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def check_trains_something(model: nn.Module, recipe: Recipe) -> None:
    """Refuse, before any run directory or checkpoint exists, a recipe with nothing to train."""
    if any(p.requires_grad for p in model.parameters()):
        return
    how = f"peft={recipe.peft}" if recipe.peft else "the task"
    raise ConfigError(f"recipe {recipe.name!r} trains nothing: {how} leaves no parameter with requires_grad; "
                      f"check peft.target_modules (or drop `peft` for full fine-tuning)")


def load_tokenizer_for(recipe: Recipe, model: nn.Module):
    """The recipe's `tokenizer:`, else the base model's own (None for a source without one)."""
    source = recipe.tokenizer or getattr(model, "tokenizer_source", None)
    if not source:
        return None
    from llmzoo.tokenizer import load_tokenizer

    return load_tokenizer(source)


def build_data(recipe: Recipe, tokenizer: Any, model: nn.Module):
    """The task builder's FinetuneData, checked against the contract."""
    from llmzoo.finetune.registry import FinetuneData, get_task

    data = get_task(recipe.task)(recipe, tokenizer, model)
    if not isinstance(data, FinetuneData):
        raise LlmzooError(f"fine-tuning task {recipe.task!r} returned {type(data).__name__}, not a FinetuneData")
    data.check(recipe.task)
    return data


def export_finetuned(model: nn.Module, run_dir: Path, recipe: Recipe,
                     tokenizer: Any) -> tuple[Path | None, Path | None]:
    """(adapter dir or None, model dir or None): a PEFT run writes its adapter in peft's format
    (llmzoo.load(base, adapter=...) and peft's PeftModel.from_pretrained read it) and the model with
    the adapter merged in, where the method merges; full fine-tuning writes the model."""
    from llmzoo.convert.save import save_model
    from llmzoo.finetune.registry import own_model

    own = own_model(recipe.task)
    if own is not None:  # its own layout, read by its own loader (peft is refused for such tasks)
        return None, own.save(model.eval(), run_dir / "model", recipe)
    adapter_dir = None
    if recipe.peft is not None:
        from llmzoo import peft

        adapter_dir = peft.save_adapter(model, run_dir / "adapter", base_model_name_or_path=base_source(recipe))
        try:
            peft.merge(model)
        except LlmzooError as e:  # prompt/prefix methods add computation: the adapter is the result
            print(f"note: no merged model ({e})", file=sys.stderr)
            return adapter_dir, None
    model.eval()
    saved = save_model(model, run_dir / "model", format="auto", tokenizer=tokenizer)
    if saved.note:
        print(f"note: {saved.note}", file=sys.stderr)
    return adapter_dir, saved.path
