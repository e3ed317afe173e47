"""Sentence-pair pretraining: BERT next-sentence prediction and ALBERT sentence-order prediction.

BERT NSP (Devlin et al. 2019, section 3.1 "Task #2"): the input is [CLS] A [SEP] B [SEP] with
token_type_ids 0 for [CLS] A [SEP] and 1 for B [SEP]; 50% of the time B is the text that
actually follows A (label 0, IsNext), 50% it is a random segment of another document
(label 1, NotNext), the label convention of `transformers.BertForPreTraining`. MLM is applied
on top and the loss is MLM + NSP.

ALBERT SOP (Lan et al. 2020, section 3.1 "Inter-sentence coherence loss"): A and B are two
consecutive segments of the same document; 50% of the time their order is swapped (label 1,
as `transformers.AlbertForPreTraining`'s sentence_order_label), else kept (label 0). ALBERT
generates its MLM targets with n-gram masking (section 4.1): n-gram length n <= 3 with
p(n) proportional to 1/n; this reuses the SpanBERT span sampler with that distribution.

Rows: each row of the (B, T) batch is one document. A takes the first `la` tokens, with `la`
uniform so that both segments are non-empty (or, with `sentence_end_ids`, A ends at a
sentence end when the row has one in range, closer to BERT's sentence-based segments). The
output keeps length T: 3 positions go to [CLS]/[SEP]/[SEP], so B covers T - 3 - la tokens.
The random B of NSP comes from another row of the batch (another document), so NSP needs a
batch of at least 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from llmzoo.errors import LlmzooError
from llmzoo.objectives import _random
from llmzoo.objectives.base import IGNORE_INDEX, require_output, sequence_cross_entropy, token_cross_entropy
from llmzoo.objectives.mlm import MaskedLM
from llmzoo.objectives.spanbert import replace_per_span, span_mask


def sample_split(tokens: Tensor, content: int, generator: torch.Generator,
                 sentence_end_ids: Sequence[int] | None) -> Tensor:
    """Length of segment A per row, in [1, content - 1]."""
    batch, device = tokens.size(0), tokens.device
    pos = torch.arange(content, device=device).unsqueeze(0)
    allowed = (pos >= 1) & (pos <= content - 1)
    keys = _random.uniform((batch, content), generator, device)
    if sentence_end_ids:
        ends = torch.isin(tokens[:, :content], torch.tensor(list(sentence_end_ids), device=device))
        after_end = torch.zeros_like(ends)
        after_end[:, 1:] = ends[:, :-1]  # la = i means A ends with token i - 1
        preferred = allowed & after_end
        has = preferred.any(1, keepdim=True)
        allowed = torch.where(has, preferred, allowed.expand_as(preferred))
    return torch.where(allowed, keys, torch.full_like(keys, -1.0)).argmax(1)


def build_pairs(first: Tensor, first_start: Tensor, first_len: Tensor,
                second: Tensor, second_start: Tensor, cls_id: int, sep_id: int) -> tuple[Tensor, Tensor]:
    """[CLS] first[first_start : +first_len] [SEP] second[second_start : ...] [SEP], each row length T.

    first / second: (B, T) source rows. Returns (input_ids, token_type_ids).
    """
    batch, length = first.shape
    pos = torch.arange(length, device=first.device).unsqueeze(0).expand(batch, length)
    la = first_len.unsqueeze(1)
    in_a = (pos >= 1) & (pos <= la)
    in_b = (pos >= la + 2) & (pos < length - 1)
    a_index = (first_start.unsqueeze(1) + pos - 1).clamp(0, length - 1)
    b_index = (second_start.unsqueeze(1) + pos - la - 2).clamp(0, length - 1)
    ids = torch.full_like(first, sep_id)
    ids[:, 0] = cls_id
    ids = torch.where(in_a, first.gather(1, a_index), ids)
    ids = torch.where(in_b, second.gather(1, b_index), ids)
    token_type = (pos >= la + 2).long()
    return ids, token_type


class _PairObjective(MaskedLM):
    """MLM on [CLS] A [SEP] B [SEP] plus a sentence-level classification."""

    fits = ("encoder",)
    loss_is_token_mean = False  # MLM + the sentence-pair loss
    label_key = ""
    logits_key = ""

    def __init__(self, *, sentence_end_ids: Sequence[int] | None = None, ngram: int = 1, **mlm_options: Any) -> None:
        if ngram < 1:
            raise LlmzooError(f"ngram must be at least 1, got {ngram}")
        self.sentence_end_ids = list(sentence_end_ids) if sentence_end_ids else None
        self.ngram = ngram
        super().__init__(**mlm_options)

    def required_tokens(self) -> tuple[str, ...]:
        return ("mask", "cls", "sep")

    def min_seq_len(self) -> int:
        return 5  # [CLS] a [SEP] b [SEP]

    def ngram_probs(self) -> Tensor:
        probs = torch.zeros(self.ngram + 1, dtype=torch.float64)
        probs[1:] = 1.0 / torch.arange(1, self.ngram + 1, dtype=torch.float64)
        return probs / probs.sum()

    def segments(self, tokens: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def mlm(self, ids: Tensor, generator: torch.Generator, word_starts: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.ngram == 1:
            return self.corrupt(ids, generator, word_starts)
        maskable = self.maskable(ids)
        budget = torch.round(maskable.sum(1).double() * self.mlm_probability).long().clamp_min(1)
        starts = self.word_starts(ids, word_starts) if (word_starts is not None or self.continuation is not None) \
            else torch.ones_like(ids, dtype=torch.bool)
        masked = span_mask(maskable, starts, budget, self.ngram_probs(), generator)
        inputs = replace_per_span(ids, masked, generator, mask_id=self.token("mask"), vocab_size=self.vocab_size,
                                  mask_replace_prob=self.mask_replace_prob, random_replace_prob=self.random_replace_prob)
        return inputs, torch.where(masked, ids, torch.full_like(ids, IGNORE_INDEX))

    def make_batch(self, tokens: Tensor, generator: torch.Generator, **extra: Any) -> dict[str, Tensor]:
        if extra.get("word_starts") is not None:
            raise LlmzooError(f"{self.name!r} re-segments the rows, so word_starts cannot follow; pass continuation= instead")
        tokens = self._validate_tokens(tokens)
        ids, token_type, sentence_labels = self.segments(tokens, generator)
        inputs, labels = self.mlm(ids, generator, None)
        return {
            "input_ids": inputs,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": token_type,
            "labels": labels,
            self.label_key: sentence_labels,
        }

    def loss(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        mlm, count, accuracy = token_cross_entropy(require_output(outputs, "logits", self.name), batch["labels"])
        sentence, sentence_accuracy = sequence_cross_entropy(
            require_output(outputs, self.logits_key, self.name), batch[self.label_key]
        )
        total = mlm + sentence
        short = self.label_key.split("_")[0]
        return total, {
            "loss": float(total.detach()), "mlm_loss": float(mlm.detach()), f"{short}_loss": float(sentence.detach()),
            "targets": float(count), "accuracy": accuracy, f"{short}_accuracy": sentence_accuracy,
        }


class BertNSP(_PairObjective):
    """BERT pretraining: MLM + next-sentence prediction."""

    name = "bert"
    paper = "Devlin et al. 2019 (BERT)"
    label_key = "nsp_labels"
    logits_key = "nsp_logits"

    def segments(self, tokens: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        batch, length = tokens.shape
        if batch < 2:
            raise LlmzooError("next-sentence prediction draws random segments from other rows: use a batch of at least 2")
        device = tokens.device
        content = length - 3
        la = sample_split(tokens, content, generator, self.sentence_end_ids)
        lb = content - la
        is_random = _random.bernoulli(0.5, (batch,), generator, device)
        # another document: a different row, uniformly
        other = (torch.arange(batch, device=device) + 1
                 + _random.randint_below(torch.full((batch,), batch - 1, device=device), generator)) % batch
        random_start = _random.randint_below(length - lb + 1, generator)
        second = torch.where(is_random.unsqueeze(1), tokens[other], tokens)
        second_start = torch.where(is_random, random_start, la)
        ids, token_type = build_pairs(tokens, torch.zeros_like(la), la, second, second_start,
                                      self.token("cls"), self.token("sep"))
        return ids, token_type, is_random.long()


class AlbertSOP(_PairObjective):
    """ALBERT pretraining: n-gram MLM + sentence-order prediction."""

    name = "albert"
    paper = "Lan et al. 2020 (ALBERT)"
    label_key = "sop_labels"
    logits_key = "sop_logits"

    def __init__(self, **options: Any) -> None:
        options.setdefault("ngram", 3)
        super().__init__(**options)

    def segments(self, tokens: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        batch, length = tokens.shape
        content = length - 3
        la = sample_split(tokens, content, generator, self.sentence_end_ids)
        lb = content - la
        swap = _random.bernoulli(0.5, (batch,), generator, tokens.device)
        zero = torch.zeros_like(la)
        first_start = torch.where(swap, la, zero)
        first_len = torch.where(swap, lb, la)
        second_start = torch.where(swap, zero, la)
        ids, token_type = build_pairs(tokens, first_start, first_len, tokens, second_start,
                                      self.token("cls"), self.token("sep"))
        return ids, token_type, swap.long()

