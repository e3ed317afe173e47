"""The `reward` fine-tuning task: a reward model from preference pairs (InstructGPT, Ouyang et al.
2022, section 3.5): the Bradley-Terry loss -log sigmoid(r(x, y_chosen) - r(x, y_rejected)), r being
the value head's score of the last token (llmzoo/models/value_head.py).

    llmzoo align reward --recipe reward-smollm2

Data (recipe `data:`): train / val / val_fraction / template, as llmzoo/align/preference_data.py
reads them. The model must carry a value head: `llmzoo align reward` attaches one (fresh, or the one
saved with model.from). Held-out pair accuracy (how often the chosen answer scores higher) and the
mean chosen-minus-rejected margin are reported when the run ends.
"""

from __future__ import annotations

from typing import Any

import torch

from llmzoo.align.losses import reward_loss
from llmzoo.align.preference_data import PairRows, build_pair_rows
from llmzoo.errors import LlmzooError
from llmzoo.finetune.registry import FinetuneData, register_task
from llmzoo.models.value_head import has_value_head, value_forward


class RewardTask:
    name = "reward"
    loss_is_token_mean = False  # exp(pairwise loss) is no perplexity
    uses_every_parameter = False  # the LM head's weights get no gradient

    def __init__(self, held_out: PairRows | None = None) -> None:
        self.held_out = held_out

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        # the chosen sides, then the rejected: one batch of 2B rows
        return {k: torch.cat([batch[f"chosen_{k}"], batch[f"rejected_{k}"]]) for k in ("input_ids", "attention_mask")}

    def forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = self.model_inputs(batch)
        return value_forward(model, inputs["input_ids"], attention_mask=inputs["attention_mask"])["rewards"]

    def loss(self, rewards: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        chosen, rejected = rewards.float().chunk(2)
        return reward_loss(chosen, rejected)

    def token_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum())

    def held_out_report(self, model: torch.nn.Module) -> dict[str, float]:
        return pair_accuracy(model, self, self.held_out) if self.held_out is not None else {}


@torch.no_grad()
def pair_accuracy(model: torch.nn.Module, task: RewardTask, rows: PairRows, batch_size: int = 16) -> dict[str, float]:
    """Share of pairs whose chosen side scores higher, the mean margin and the mean loss (eval mode)."""
    was_training = model.training
    model.eval()
    margins = []
    for start in range(0, len(rows), batch_size):
        rewards = task.forward(model, rows.rows(list(range(start, min(start + batch_size, len(rows))))))
        chosen, rejected = rewards.float().chunk(2)
        margins.append(chosen - rejected)
    model.train(was_training)
    margin = torch.cat(margins)
    return {"reward_accuracy": float((margin > 0).float().mean()), "reward_margin": float(margin.mean()),
            "reward_loss": float(reward_loss(margin, torch.zeros_like(margin))), "pairs": float(len(margin))}


def build_reward(recipe, tokenizer, model) -> FinetuneData:
    if not has_value_head(model):
        raise LlmzooError(f"task reward trains a value head, and {model.config.name} has none; run the recipe with "
                          f"`llmzoo align reward --recipe ...`, which attaches one")
    model.score.requires_grad_(True)  # the head always trains, PEFT or not (peft's modules_to_save=["score"])
    train, val = build_pair_rows(recipe, tokenizer, model, "reward")
    task = RewardTask(val)
    return FinetuneData(task, train, val)


register_task("reward", build_reward)
