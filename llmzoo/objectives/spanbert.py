"""SpanBERT: span masking with the span-boundary objective (Joshi et al. 2020,
"SpanBERT: Improving Pre-training by Representing and Predicting Spans").

Procedure (paper section 3.1 and facebookresearch/SpanBERT `PairWithSpanMaskingScheme`):
sample a span length in *words* l ~ Geometric(p=0.2) clipped to l <= 10 (the distribution is
truncated to 1..10 and renormalised, giving the paper's mean of 3.8 words), pick a random
anchor token that is not yet masked, start the span at the beginning of the anchor's word and
cover l complete words; repeat until 15% of the tokens (ceil, as the reference code) are
masked, stopping exactly at the budget. As in BERT 80/10/10, but decided once per span:
the whole span becomes [MASK], random tokens, or stays unchanged.

Span-boundary objective (SBO): each masked token x_i of a span (s..e) is also predicted from
the boundary tokens x_{s-1}, x_{e+1} and the relative position i - s. The batch gives, per
position, `sbo_left` = s - 1, `sbo_right` = e + 1, `sbo_offsets` = i - s and `sbo_labels`
(the original token, IGNORE_INDEX where there is no SBO target). Overlapping or touching
spans are merged first, as the reference code merges intervals; spans touching the sequence
edge have no boundary on one side and get no SBO target. The model returns `sbo_logits`
(B, T, V); the loss is MLM + SBO, summed as in the paper.

Batching: the spans of all rows are drawn together, one span per unfinished row per round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from llmzoo.errors import LlmzooError
from llmzoo.objectives import _random
from llmzoo.objectives._rows import run_bounds
from llmzoo.objectives.base import IGNORE_INDEX, require_output, token_cross_entropy
from llmzoo.objectives.mlm import MaskedLM


def truncated_geometric(p: float, max_len: int) -> Tensor:
    """P(l) for l = 0..max_len of Geometric(p) truncated to 1..max_len and renormalised."""
    pmf = _random.geometric_pmf(p, max_len)
    return pmf / pmf.sum()


def span_mask(
    maskable: Tensor,
    word_starts: Tensor,
    budget: Tensor,
    length_probs: Tensor,
    generator: torch.Generator,
    max_rounds: int | None = None,
) -> Tensor:
    """(B, T) bool of masked positions: whole-word spans at random anchors until budget[b] tokens.

    maskable: (B, T) positions that may be masked (specials are span boundaries too);
    length_probs: probabilities of span lengths 0..K in words (index = length).
    """
    batch, length = maskable.shape
    device = maskable.device
    word_id = word_starts.long().cumsum(1)
    segment = (~maskable).long().cumsum(1)  # maskable stretches between specials share a value
    budget = torch.minimum(budget, maskable.sum(1))
    masked = torch.zeros_like(maskable)
    count = torch.zeros(batch, dtype=torch.long, device=device)
    rows = torch.arange(batch, device=device)
    rounds = max_rounds if max_rounds is not None else 20 * length + 100
    for _ in range(rounds):
        active = count < budget
        if not bool(active.any()):
            break
        span_words = _random.categorical(length_probs, (batch,), generator, device)
        keys = _random.uniform((batch, length), generator, device)
        anchor = torch.where(maskable, keys, torch.full_like(keys, -1.0)).argmax(1)
        ok = active & ~masked[rows, anchor]
        first_word = word_id[rows, anchor].unsqueeze(1)
        covered = (
            (word_id >= first_word)
            & (word_id < first_word + span_words.unsqueeze(1))
            & (segment == segment[rows, anchor].unsqueeze(1))
            & maskable
        )
        new = covered & ~masked & ok.unsqueeze(1)
        take = new & (new.long().cumsum(1) <= (budget - count).unsqueeze(1))
        masked |= take
        count += take.sum(1)
    return masked


def replace_per_span(
    tokens: Tensor, masked: Tensor, generator: torch.Generator, *, mask_id: int, vocab_size: int,
    mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
) -> Tensor:
    """Input ids where each masked span, as a whole, becomes [MASK] / random tokens / itself."""
    start, _ = run_bounds(masked)
    draw = _random.uniform(tuple(tokens.shape), generator, tokens.device).gather(1, start)
    to_mask = masked & (draw < mask_replace_prob)
    to_random = masked & (draw >= mask_replace_prob) & (draw < mask_replace_prob + random_replace_prob)
    random_words = torch.randint(vocab_size, tuple(tokens.shape), generator=generator, device=generator.device)
    inputs = tokens.masked_fill(to_mask, mask_id)
    return torch.where(to_random, random_words.to(tokens.device), inputs)


def span_boundary_targets(tokens: Tensor, masked: Tensor, max_offset: int) -> dict[str, Tensor]:
    """SBO inputs/targets per position for the (merged) masked spans."""
    length = tokens.size(1)
    start, end = run_bounds(masked)
    pos = torch.arange(length, device=tokens.device).unsqueeze(0)
    left, right, offset = start - 1, end + 1, pos - start
    valid = masked & (left >= 0) & (right < length) & (offset < max_offset)
    return {
        "sbo_left": torch.where(valid, left, torch.zeros_like(left)),
        "sbo_right": torch.where(valid, right, torch.zeros_like(right)),
        "sbo_offsets": torch.where(valid, offset, torch.zeros_like(offset)),
        "sbo_labels": torch.where(valid, tokens, torch.full_like(tokens, IGNORE_INDEX)),
    }


class SpanBERT(MaskedLM):
    """Geometric whole-word span masking + span-boundary objective."""

    name = "spanbert"
    fits = ("encoder",)
    paper = "Joshi et al. 2020 (SpanBERT)"

    @property
    def loss_is_token_mean(self) -> bool:  # type: ignore[override]
        return not self.sbo  # with the span-boundary objective the loss is MLM + SBO

    def __init__(
        self,
        *,
        special_tokens: Mapping[str, int] | None = None,
        vocab_size: int | None = None,
        mlm_probability: float = 0.15,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        geometric_p: float = 0.2,
        max_span_words: int = 10,
        continuation: Any = None,
        sbo: bool = True,
        max_span_offset: int = 30,
    ) -> None:
        if not 0.0 < geometric_p <= 1.0:
            raise LlmzooError(f"geometric_p must be in (0, 1], got {geometric_p}")
        if max_span_words < 1:
            raise LlmzooError(f"max_span_words must be at least 1, got {max_span_words}")
        self.geometric_p = geometric_p
        self.max_span_words = max_span_words
        self.sbo = sbo
        self.max_span_offset = max_span_offset
        super().__init__(
            special_tokens=special_tokens, vocab_size=vocab_size, mlm_probability=mlm_probability,
            mask_replace_prob=mask_replace_prob, random_replace_prob=random_replace_prob,
            continuation=continuation,
        )

    def length_probs(self) -> Tensor:
        return truncated_geometric(self.geometric_p, self.max_span_words)

    def word_starts(self, tokens: Tensor, word_starts: Tensor | None) -> Tensor:
        # Without word boundaries every token is its own word (a BPE/byte-level vocabulary).
        if word_starts is None and self.continuation is None:
            return torch.ones_like(tokens, dtype=torch.bool)
        return super().word_starts(tokens, word_starts)

    def make_batch(self, tokens: Tensor, generator: torch.Generator, word_starts: Tensor | None = None,
                   **extra: Any) -> dict[str, Tensor]:
        tokens = self._validate_tokens(tokens)
        maskable = self.maskable(tokens)
        budget = torch.ceil(maskable.sum(1).double() * self.mlm_probability).long()
        masked = span_mask(maskable, self.word_starts(tokens, word_starts), budget, self.length_probs(), generator)
        inputs = replace_per_span(
            tokens, masked, generator, mask_id=self.token("mask"), vocab_size=self.vocab_size,
            mask_replace_prob=self.mask_replace_prob, random_replace_prob=self.random_replace_prob,
        )
        batch = {
            "input_ids": inputs,
            "attention_mask": torch.ones_like(tokens),
            "labels": torch.where(masked, tokens, torch.full_like(tokens, IGNORE_INDEX)),
        }
        if self.sbo:
            batch.update(span_boundary_targets(tokens, masked, self.max_span_offset))
        return batch

    def loss(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        mlm, count, accuracy = token_cross_entropy(require_output(outputs, "logits", self.name), batch["labels"])
        metrics = {"mlm_loss": float(mlm.detach()), "targets": float(count), "accuracy": accuracy}
        total = mlm
        if self.sbo:
            sbo, _, sbo_accuracy = token_cross_entropy(require_output(outputs, "sbo_logits", self.name), batch["sbo_labels"])
            total = mlm + sbo
            metrics.update({"sbo_loss": float(sbo.detach()), "sbo_accuracy": sbo_accuracy})
        metrics["loss"] = float(total.detach())
        return total, metrics
