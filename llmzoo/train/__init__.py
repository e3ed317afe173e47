"""Pretraining: recipes, the training loop, checkpoints, loss-spike recovery and scale-out.

    from llmzoo.train import load_recipe, train
    result = train(load_recipe("shakespeare", ["max_steps=100"]))
    result.losses[100], result.val_loss, result.curve

Modules: recipe (YAML + overrides), prepare (tokenizer and data for a recipe), batches
(deterministic windows), task (clm and the objectives registry), optim (AdamW groups, LR schedule),
engine (the model in its parallel layout), distributed / pipeline / state (torch.distributed),
checkpoint (atomic save, resume), spikes (PaLM-style rewinds), metrics, progress, loop.
"""

from __future__ import annotations

import importlib
from typing import Any

# Resolved on first use (PEP 562): `llmzoo finetune --help` and `llmzoo models` read recipe names
# through llmzoo.train.recipe, and importing the package must not pull torch in with the loop.
_EXPORTS = {"TrainResult": "loop", "Trainer": "loop", "train": "loop",
            "Recipe": "recipe", "builtin_recipes": "recipe", "load_recipe": "recipe"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmzoo.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llmzoo.train.{_EXPORTS[name]}"), name)
