"""ELECTRA replaced-token detection (Clark et al. 2020, "ELECTRA: Pre-training Text Encoders as
Discriminators Rather Than Generators"; google-research/electra pretrain_helpers.py).

1. `make_batch`: the generator's MLM input. As the reference `mask()`: exactly
   round(0.15 * n) positions per row (n = non-special tokens), of which 85% become [MASK] and
   15% keep their token (ELECTRA does not insert random tokens: the generator supplies them).
2. `sample_replacements(gen_logits, batch, generator)`: sample a token at each masked position
   from the generator's softmax (temperature 1, no gradient, drawn with the seeded generator); the discriminator input is the original sequence with those samples in place.
   `rtd_labels` is 1 where the discriminator input differs from the original; a sample that
   happens to equal the original token counts as original, as in the paper.
3. `loss`: generator MLM cross-entropy + lambda * discriminator binary cross-entropy averaged
   over all (non-padding) tokens, lambda = 50 (section 2).

Model side: the generator (a small MLM, 1/4-1/3 of the discriminator's width) and the
discriminator share their token (and position) embeddings (section 3.2, "tied embeddings");
the discriminator head returns one logit per token, `rtd_logits` (B, T). `loss` takes
`outputs = {"logits": generator logits (B, T, V), "rtd_logits": discriminator logits (B, T)}`.

    batch = obj.make_batch(tokens, g)
    gen_logits = generator(**obj.model_inputs(batch))["logits"]
    batch = obj.sample_replacements(gen_logits, batch, g)
    rtd_logits = discriminator(**obj.discriminator_inputs(batch))["rtd_logits"]
    loss, metrics = obj.loss({"logits": gen_logits, "rtd_logits": rtd_logits}, batch)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from llmzoo.errors import LlmzooError
from llmzoo.objectives import _random
from llmzoo.objectives.base import IGNORE_INDEX, require_output, token_cross_entropy, token_mean_scale
from llmzoo.objectives.mlm import MaskedLM


class ElectraRTD(MaskedLM):
    """Generator MLM + discriminator replaced-token detection."""

    name = "electra"
    fits = ("encoder",)
    paper = "Clark et al. 2020 (ELECTRA)"
    loss_is_token_mean = False  # generator MLM + disc_weight x binary discriminator loss

    def __init__(self, *, special_tokens: Mapping[str, int] | None = None, vocab_size: int | None = None,
                 mlm_probability: float = 0.15, mask_replace_prob: float = 0.85, exact_count: bool = True,
                 disc_weight: float = 50.0, gen_weight: float = 1.0, temperature: float = 1.0) -> None:
        if temperature <= 0:
            raise LlmzooError(f"temperature must be positive, got {temperature}")
        self.disc_weight = disc_weight
        self.gen_weight = gen_weight
        self.temperature = temperature
        super().__init__(special_tokens=special_tokens, vocab_size=vocab_size, mlm_probability=mlm_probability,
                         mask_replace_prob=mask_replace_prob, random_replace_prob=0.0, exact_count=exact_count)

    def make_batch(self, tokens: Tensor, generator: torch.Generator, **extra: Any) -> dict[str, Tensor]:
        batch = super().make_batch(tokens, generator, **extra)
        batch["original_ids"] = self._validate_tokens(tokens)
        # One uniform per position for sample_replacements, drawn with the batch: a batch split over
        # data-parallel processes then samples the same replacements row by row as one process does.
        batch["replacement_draws"] = _random.uniform(tuple(tokens.shape), generator, tokens.device)
        return batch

    def sample_replacements(self, gen_logits: Tensor, batch: Mapping[str, Tensor], generator: torch.Generator
                            ) -> dict[str, Tensor]:
        """The batch plus `disc_input_ids` and `rtd_labels`, sampling the generator at masked positions."""
        labels, original = batch["labels"], batch["original_ids"]
        if gen_logits.shape[:-1] != labels.shape:
            raise LlmzooError(f"generator logits {tuple(gen_logits.shape)} do not match the batch {tuple(labels.shape)}")
        masked = labels != IGNORE_INDEX
        with torch.no_grad():
            logits = gen_logits.detach()[masked.to(gen_logits.device)].float() / self.temperature  # (M, V)
            # inverse-CDF sampling: one uniform per masked position, not one per vocabulary entry
            cdf = torch.softmax(logits, dim=-1).cumsum(-1)
            draws = batch.get("replacement_draws")
            if draws is None:
                draws = _random.uniform((logits.size(0), 1), generator, logits.device)
            else:
                draws = draws[masked].to(logits.device, torch.float32).unsqueeze(1)
            draw = draws * cdf[:, -1:]
            sampled = torch.searchsorted(cdf, draw).squeeze(1).clamp_max(logits.size(-1) - 1)
        disc_input = original.clone()
        disc_input[masked] = sampled.to(original.device)
        out = dict(batch)
        out["disc_input_ids"] = disc_input
        out["rtd_labels"] = (disc_input != original).long()
        return out

    def discriminator_inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """What the discriminator reads, once sample_replacements has filled disc_input_ids."""
        if "disc_input_ids" not in batch:
            raise LlmzooError("call sample_replacements(gen_logits, batch, generator) before running the discriminator")
        return {"input_ids": batch["disc_input_ids"], "attention_mask": batch["attention_mask"]}

    def loss(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        if "rtd_labels" not in batch:
            raise LlmzooError("electra's loss needs rtd_labels: call sample_replacements(gen_logits, batch, generator) first")
        mlm, count, accuracy = token_cross_entropy(require_output(outputs, "logits", self.name), batch["labels"])
        rtd_logits = require_output(outputs, "rtd_logits", self.name).float()
        rtd_labels = batch["rtd_labels"].to(rtd_logits.device).float()
        weight = batch["attention_mask"].to(rtd_logits.device).float()
        per_token = F.binary_cross_entropy_with_logits(rtd_logits, rtd_labels, reduction="none")
        disc = (per_token * weight).sum() / weight.sum().clamp_min(1.0) * token_mean_scale(int(weight.sum()))
        total = self.gen_weight * mlm + self.disc_weight * disc
        with torch.no_grad():
            disc_accuracy = float((((rtd_logits > 0).float() == rtd_labels).float() * weight).sum() / weight.sum().clamp_min(1.0))
        return total, {
            "loss": float(total.detach()), "mlm_loss": float(mlm.detach()), "rtd_loss": float(disc.detach()), "targets": float(count),
            "accuracy": accuracy, "rtd_accuracy": disc_accuracy,
            "replaced_fraction": float(rtd_labels.sum() / weight.sum().clamp_min(1.0)),
        }
