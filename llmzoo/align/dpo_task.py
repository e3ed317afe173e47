"""The `dpo` fine-tuning task: Direct Preference Optimization (Rafailov et al. 2023) and its kin
(IPO, Azar et al. 2023; hinge, SLiC-style; robust/cDPO with label smoothing) on preference pairs.

    llmzoo align dpo --recipe dpo-lora-smollm2

Recipe `data:` settings (the registry's builders read theirs from `data:`):

    train / val / val_fraction / template   the pairs, as llmzoo/align/preference_data.py reads them
    beta            the KL strength (default 0.1): implicit reward = beta * log(pi / ref)
    loss_type       sigmoid (DPO) | ipo | hinge | robust
    label_smoothing the assumed share of flipped labels (robust, and cDPO's smoothing of sigmoid)
    reference       auto | adapters | copy | SOURCE: the reference policy.
                    adapters: the same network with its PEFT adapters disabled (one model in memory);
                    copy: a frozen copy of the base as it was before training;
                    auto: adapters under peft, copy otherwise; SOURCE: another model llmzoo.load reads
                    (same vocabulary and architecture).
    report_pairs    pairs of each split scored when the run ends (default 64)

Both sides of every pair run as one batch of 2B rows through the policy and the reference; the
log-probabilities are summed over the answer's tokens only (llmzoo.align.sequence_logps).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from llmzoo.align.logps import sequence_logps
from llmzoo.align.losses import DPO_LOSS_TYPES, dpo_loss
from llmzoo.align.preference_data import PairRows, both_sides, build_pair_rows
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.finetune.registry import FinetuneData, register_task

DPO_KEYS = ("beta", "loss_type", "label_smoothing", "reference", "report_pairs")
REFERENCES = ("auto", "adapters", "copy")


class Reference:
    """log-probabilities under the reference policy, without gradients."""

    def __init__(self, kind: str, model: nn.Module | None = None) -> None:
        self.kind = kind
        self.model = model  # "copy" / a source: the separate frozen network; "adapters": None

    def logps(self, policy: nn.Module, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.model is None:
                from llmzoo import peft

                with peft.disabled(policy):
                    return sequence_logps(policy, ids, labels, attention_mask=mask)
            device = ids.device
            if next(self.model.parameters()).device != device:
                self.model.to(device)
            return sequence_logps(self.model, ids, labels, attention_mask=mask)


def make_reference(setting: Any, model: nn.Module) -> Reference:
    from llmzoo.peft.methods import adapter_modules

    has_adapters = bool(adapter_modules(model))
    setting = "auto" if setting in (None, "") else str(setting)
    if setting == "auto":
        setting = "adapters" if has_adapters else "copy"
    if setting == "adapters":
        if not has_adapters:
            raise ConfigError("data.reference=adapters needs a PEFT adapter (peft.method=lora ...); without one use "
                              "data.reference=copy")
        return Reference("adapters")
    if setting == "copy":
        frozen = copy.deepcopy(model).eval()
        frozen.requires_grad_(False)
        return Reference("copy", frozen)
    import llmzoo

    other = llmzoo.load(setting, dtype=torch.float32).eval()
    other.requires_grad_(False)
    mine, theirs = model.config, other.config
    if (theirs.vocab_size, theirs.arch) != (mine.vocab_size, mine.arch):
        raise LlmzooError(f"reference model {setting!r} is a {theirs.arch} over {theirs.vocab_size} tokens but the policy is a "
                          f"{mine.arch} over {mine.vocab_size}: DPO compares their log-probabilities token by token, "
                          f"so both need one vocabulary and architecture")
    return Reference(setting, other)


class DPOTask:
    name = "dpo"
    loss_is_token_mean = False
    uses_every_parameter = True

    def __init__(self, reference: Reference, beta: float, loss_type: str, label_smoothing: float) -> None:
        self.reference, self.beta, self.loss_type, self.label_smoothing = reference, beta, loss_type, label_smoothing
        self.report_rows: dict[str, tuple[PairRows, list[int], torch.Tensor]] = {}

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        ids, _, mask = both_sides(batch)
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids, labels, mask = both_sides(batch)
        policy = sequence_logps(model, ids, labels, attention_mask=mask)
        reference = self.reference.logps(model, ids, labels, mask)
        return {"policy": policy, "reference": reference}

    def losses(self, outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pc, pr = outputs["policy"].float().chunk(2)
        rc, rr = outputs["reference"].float().chunk(2)
        return dpo_loss(pc, pr, rc, rr, beta=self.beta, loss_type=self.loss_type, label_smoothing=self.label_smoothing)

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.losses(outputs)[0]

    def token_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum())

    def remember_reference(self, model: nn.Module, split: str, rows: PairRows, count: int, batch_size: int = 16) -> None:
        """Score the first `count` pairs of a split under the reference now, for held_out_report:
        when the run ends the model may be merged (adapters gone) and the reference with them."""
        indices = list(range(min(count, len(rows))))
        logps = []
        for start in range(0, len(indices), batch_size):
            batch = rows.rows(indices[start:start + batch_size])
            ids, labels, mask = both_sides(batch)
            c, r = self.reference.logps(model, ids, labels, mask).chunk(2)
            logps.append(torch.stack([c, r], dim=1))  # (b, 2)
        if indices:
            self.report_rows[split] = (rows, indices, torch.cat(logps))

    @torch.no_grad()
    def held_out_report(self, model: nn.Module, batch_size: int = 16) -> dict[str, float]:
        """Per split: the DPO loss, the mean implicit rewards of chosen and rejected, their margin and
        how often the chosen one is higher (trl's rewards/accuracies). Before training both rewards are 0."""
        was_training = model.training
        model.eval()
        report: dict[str, float] = {}
        for split, (rows, indices, reference) in self.report_rows.items():
            chosen, rejected, losses = [], [], []
            for start in range(0, len(indices), batch_size):
                batch = rows.rows(indices[start:start + batch_size])
                ids, labels, mask = both_sides(batch)
                ref = reference[start:start + batch_size]
                outputs = {"policy": sequence_logps(model, ids, labels, attention_mask=mask),
                           "reference": torch.cat([ref[:, 0], ref[:, 1]])}
                loss, c, r = self.losses(outputs)
                chosen.append(c)
                rejected.append(r)
                losses.append(loss * len(c))
            c, r = torch.cat(chosen), torch.cat(rejected)
            report.update({f"{split}_dpo_loss": float(sum(losses) / len(c)), f"{split}_reward_chosen": float(c.mean()),
                           f"{split}_reward_rejected": float(r.mean()), f"{split}_reward_margin": float((c - r).mean()),
                           f"{split}_reward_accuracy": float((c > r).float().mean()), f"{split}_pairs": float(len(c))})
        model.train(was_training)
        return report


def dpo_settings(data: dict | None) -> tuple[float, str, float, Any, int]:
    data = dict(data or {})
    try:
        beta = float(data.get("beta", 0.1))
        smoothing = float(data.get("label_smoothing", 0.0))
        report = int(data.get("report_pairs", 64))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data.beta, data.label_smoothing and data.report_pairs are numbers: {e}") from None
    if not beta > 0:
        raise ConfigError(f"data.beta must be > 0 (the KL strength of DPO), got {beta}")
    loss_type = str(data.get("loss_type", "sigmoid"))
    if loss_type not in DPO_LOSS_TYPES:
        raise ConfigError(f"data.loss_type {loss_type!r} is not one of {', '.join(DPO_LOSS_TYPES)}")
    if not 0.0 <= smoothing < 0.5:
        raise ConfigError(f"data.label_smoothing must be in [0, 0.5), got {smoothing}")
    return beta, loss_type, smoothing, data.get("reference", "auto"), report


def build_dpo(recipe, tokenizer, model) -> FinetuneData:
    """The registry's builder: settings checked first, then the pairs, then the reference (the model
    as it is now, before any step, is the starting policy)."""
    if model.config.arch != "decoder":
        raise LlmzooError(f"task dpo trains a causal language model; {model.config.name} is a {model.config.arch}")
    beta, loss_type, smoothing, reference, report = dpo_settings(recipe.data)
    train, val = build_pair_rows(recipe, tokenizer, model, "dpo", DPO_KEYS)
    task = DPOTask(make_reference(reference, model), beta, loss_type, smoothing)
    was_training = model.training
    model.eval()  # dropout off: the reference's scores are deterministic
    task.remember_reference(model, "train", train, report)
    if val is not None:
        task.remember_reference(model, "val", val, report)
    model.train(was_training)
    return FinetuneData(task, train, val)


register_task("dpo", build_dpo)
