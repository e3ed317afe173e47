"""A tiny fine-tuning task for the loop's tests, registered on import as `next-token`: next-token
prediction on fixed rows of a synthetic Markov stream (tests/train/helpers.py), and a tiny random
decoder saved where `model.from` can load it. Recipes name the task
`tests.train.finetune_helpers:next-token`, so a fresh `llmzoo finetune` process finds it too."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from llmzoo.finetune import FinetuneData, register_task
from tests.train.helpers import VOCAB, markov_tokens

TASK = "tests.train.finetune_helpers:next-token"
ROW = 17  # 16 inputs + the shifted targets
IGNORE = -100  # a label without a target


class Rows:
    """Fixed (n, ROW) token rows; `rows` is a pure function of the indices, as the contract asks."""

    def __init__(self, n: int, seed: int, masked: bool = False) -> None:
        self.tokens = torch.from_numpy(markov_tokens(n * ROW, seed)).view(n, ROW)
        # masked: row i scores only its last ROW - 1 - (5 i mod 13) targets, so rows' target counts differ
        self.masked = masked

    def __len__(self) -> int:
        return self.tokens.size(0)

    def rows(self, indices: list[int]) -> dict[str, torch.Tensor]:
        chosen = self.tokens[torch.tensor(indices, dtype=torch.long)]
        labels = chosen[:, 1:].clone()
        if self.masked:
            for r, i in enumerate(indices):
                labels[r, : (5 * i) % 13] = IGNORE
        return {"input_ids": chosen[:, :-1], "labels": labels}


class NextToken:
    def model_inputs(self, batch):
        return {"input_ids": batch["input_ids"]}

    def loss(self, outputs, batch):
        logits = outputs.logits
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch["labels"].reshape(-1),
                               ignore_index=IGNORE)

    def token_count(self, batch):
        return batch["labels"].numel()


class MaskedNextToken(NextToken):
    """The loss is a mean over a varying number of targets: says how many (the loop weights by it)."""

    def target_count(self, batch):
        return int((batch["labels"] != IGNORE).sum())


def build(recipe, tokenizer, model) -> FinetuneData:
    data = recipe.data or {}
    if data.get("freeze_all"):  # a task that leaves nothing to train: the loop must refuse it
        for p in model.parameters():
            p.requires_grad_(False)
    masked = bool(data.get("masked"))
    task = MaskedNextToken() if masked else NextToken()
    return FinetuneData(task=task, train=Rows(int(data.get("rows", 48)), seed=0, masked=masked), val=Rows(8, seed=1))


register_task("next-token", build)


def tiny_base(directory: Path) -> Path:
    """A tiny random decoder (LLaMA-style, VOCAB ids) saved as a directory llmzoo.load reads."""
    import llmzoo
    from llmzoo.config import ModelConfig
    from llmzoo.models.build import build_model

    torch.manual_seed(0)
    config = ModelConfig(name="tiny-base", vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64,
                         max_seq_len=64)
    return llmzoo.save(build_model(config), directory)


def finetune_recipe(base: Path, run_dir: Path, **overrides) -> dict:
    recipe = {
        "name": "tiny-finetune", "task": TASK, "model": {"from": str(base)}, "run_dir": str(run_dir),
        "batch_size": 4, "max_steps": 8, "warmup_steps": 2, "lr": 3e-3, "min_lr": 3e-4, "seq_len": 16,
        "eval_every": 4, "eval_batches": 2, "checkpoint_every": 4, "keep_last": 10,
        "precision": "fp32", "threads": 1, "deterministic": True, "progress": False, "peak_flops": 1e11,
    }
    recipe.update(overrides)
    return recipe
