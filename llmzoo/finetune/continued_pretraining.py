"""Continued pretraining (and context extension) of a loaded decoder on new token shards: next-token
prediction over windows of a dataset `llmzoo data prepare` wrote, starting from the weights of
any source llmzoo.load reads (a zoo name with weights, an HF or llmzoo directory, a .gguf file).

    # cpt.yaml                                   llmzoo finetune --recipe cpt.yaml
    task: clm
    model: {from: runs/shakespeare/model}        # or an HF dir, a zoo name with weights, a .gguf
    data: {tokens: runs/new-text/data}           # `llmzoo data prepare` output, the model's tokenizer
    seq_len: 256

Context extension (Chen et al. 2023, "position interpolation") is the same task with longer windows
and RoPE scaled: `model.rope_scaling={kind: linear, factor: 4} model.max_seq_len=1024 seq_len=1024`
(recipe context-pi-shakespeare, docs/context_extension.md).

The optimizer starts fresh (a new run) or resumes exactly with `--resume RUN_DIR`, as every fine-tune.
Rows are consecutive, non-overlapping windows of seq_len + 1 tokens (inputs and next-token targets),
so the val split's loss is the held-out perplexity at that window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llmzoo.errors import LlmzooError
from llmzoo.finetune.registry import FinetuneData, register_task
from llmzoo.finetune.rows import data_setting


class TokenWindows:
    """Window i holds tokens [i * seq_len, i * seq_len + seq_len + 1) of a split."""

    def __init__(self, dataset, seq_len: int) -> None:
        self.dataset, self.seq_len = dataset, seq_len
        self.count = max((dataset.num_tokens - 1) // seq_len, 0)

    def __len__(self) -> int:
        return self.count

    def rows(self, indices: list[int]) -> dict[str, torch.Tensor]:
        windows = np.stack([self.dataset.read(i * self.seq_len, self.seq_len + 1) for i in indices])
        tokens = torch.from_numpy(windows)
        return {"input_ids": tokens[:, :-1], "labels": tokens[:, 1:]}


class NextTokenTask:
    """Mean next-token cross-entropy; the model computes it by chunks when it can (DecoderLM targets=)."""

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"input_ids": batch["input_ids"], "targets": batch["labels"]}

    def loss(self, outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs.loss


@torch.no_grad()
def window_perplexity(model: torch.nn.Module, windows: TokenWindows, batch_size: int = 8) -> float:
    """exp(mean next-token cross-entropy) over every window (eval mode): perplexity at that window."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        batch = windows.rows(list(range(start, min(start + batch_size, len(windows)))))
        logits = model(batch["input_ids"]).logits
        total += F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), reduction="sum").item()
        count += batch["labels"].numel()
    model.train(was_training)
    return float(np.exp(total / max(count, 1)))


def build_continued_pretraining(recipe, tokenizer, model) -> FinetuneData:
    from llmzoo.data import open_token_dataset

    config = model.config
    if config.arch != "decoder" or getattr(model, "lm_head", None) is None:
        raise LlmzooError(f"task clm continues a decoder's next-token pretraining; {config.name} is a {config.arch} "
                          f"with head {config.head!r}")
    directory = data_setting(recipe.data, "tokens")
    if directory is None:
        raise LlmzooError("set data.tokens=DIR, a dataset `llmzoo data prepare` wrote (token shards + manifest.json)")
    train = open_token_dataset(directory, "train")
    if train.vocab_size > config.vocab_size:
        raise LlmzooError(f"{directory} holds ids up to {train.vocab_size - 1} but {config.name} has {config.vocab_size} "
                          f"embeddings; prepare the data with the model's own tokenizer")
    if recipe.seq_len > config.max_seq_len and config.position != "rope":
        raise LlmzooError(f"seq_len={recipe.seq_len} exceeds {config.name}'s context of {config.max_seq_len}")
    windows = TokenWindows(train, recipe.seq_len)
    if len(windows) == 0:
        raise LlmzooError(f"{directory} has {train.num_tokens} training tokens, fewer than one window of seq_len + 1")
    try:
        val = TokenWindows(open_token_dataset(directory, "val"), recipe.seq_len)
    except LlmzooError:  # no val split
        val = None
    return FinetuneData(NextTokenTask(), windows, val if val is not None and len(val) else None)


register_task("clm", build_continued_pretraining)
