"""The SFT loss: token-mean cross-entropy over the assistant's tokens only."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from llmzoo.finetune.sft_rows import IGNORE

# What the decoder's forward takes from a row: packed rows add positions and document ids.
_MODEL_INPUTS = ("input_ids", "position_ids", "document_ids")


class SFTTask:
    """Supervised fine-tuning (instruction tuning, Wei et al. 2021 FLAN; Ouyang et al. 2022):
    next-token cross-entropy, averaged over the tokens that carry a target (labels != -100)."""

    name = "sft"
    loss_is_token_mean = True
    uses_every_parameter = True

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {k: batch[k] for k in _MODEL_INPUTS if k in batch}

    def loss(self, outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        keep = labels != IGNORE
        # Only target positions go through the softmax; fp32 there even under bf16 autocast
        # (log-softmax over a 50k vocabulary loses too much precision in bf16).
        return F.cross_entropy(outputs.logits[keep].float(), labels[keep])

    def token_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["input_ids"].numel())
