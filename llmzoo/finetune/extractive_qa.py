"""Extractive QA (SQuAD; Rajpurkar et al. 2016) on an encoder's `qa` head: the answer is the span
of context tokens between the predicted start and end, trained by the mean of the start and end
cross-entropies (BERT, Devlin et al. 2019, section 4.2).

    llmzoo finetune --recipe cls-minilm-sst2 task=qa model.head=qa data.builtin=null data.train=squad.jsonl

Rows (SQuAD's own shape): `question`, `context`, `answers: {text: [...], answer_start: [...]}`
(the first answer trains). An answer cut off by `max_len` points at the first token ([CLS]), as
BERT marks "no answer in this window".
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from llmzoo.errors import LlmzooError
from llmzoo.finetune.classification import EncoderClassificationTask, ensure_head, pad_id, truncating_backend
from llmzoo.finetune.registry import FinetuneData, register_task
from llmzoo.finetune.rows import PaddedRows, data_setting, read_jsonl


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    return (F.cross_entropy(start_logits.float(), start) + F.cross_entropy(end_logits.float(), end)) / 2


class ExtractiveQATask(EncoderClassificationTask):
    metric = "exact_match"  # of the predicted token span, SQuAD's EM at the token level

    def loss(self, outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return span_loss(outputs.start_logits, outputs.end_logits, batch["start_positions"], batch["end_positions"])

    def score(self, outputs, batch: dict[str, torch.Tensor]) -> tuple[int, int]:
        """Exact match of the predicted (start, end) token span."""
        hit = (outputs.start_logits.argmax(-1) == batch["start_positions"]) & (
            outputs.end_logits.argmax(-1) == batch["end_positions"])
        return int(hit.sum()), int(hit.numel())


def answer_span(enc, answer_start: int, answer_text: str) -> tuple[int, int]:
    """Token indices of the first and last context token overlapping the answer's characters."""
    first_char, last_char = answer_start, answer_start + len(answer_text)
    start = end = None
    for i, (seq, (lo, hi)) in enumerate(zip(enc.sequence_ids, enc.offsets)):
        if seq != 1 or hi <= first_char or lo >= last_char:
            continue
        start = i if start is None else start
        end = i
    return (start, end) if start is not None else (0, 0)


def encode_squad(rows: list[dict[str, Any]], backend, pad: int) -> PaddedRows:
    examples = []
    for row in rows:
        answers = row["answers"]
        texts, starts = answers.get("text") or [], answers.get("answer_start") or []
        if not texts or not starts or not isinstance(starts[0], int):
            raise LlmzooError(f"row {row['_line']}: answers needs text and answer_start lists with one answer at least")
        context = row["context"]
        if context[starts[0]:starts[0] + len(texts[0])] != texts[0]:
            raise LlmzooError(f"row {row['_line']}: answer {texts[0]!r} is not at character {starts[0]} of the context")
        enc = backend.encode(row["question"], context)
        start, end = answer_span(enc, starts[0], texts[0])
        examples.append({"input_ids": enc.ids, "attention_mask": [1] * len(enc.ids), "token_type_ids": enc.type_ids,
                         "start_positions": start, "end_positions": end})
    return PaddedRows(examples, {"input_ids": pad, "attention_mask": 0, "token_type_ids": 0})


def build_qa(recipe, tokenizer, model) -> FinetuneData:
    data = recipe.data
    ensure_head(model, "qa", "qa", None)
    if data_setting(data, "train") is None:
        raise LlmzooError("set data.train=FILE.jsonl (SQuAD-style rows: question, context, answers)")
    backend = truncating_backend(tokenizer, int(data_setting(data, "max_len", recipe.seq_len)))
    required = ("question", "context", "answers")
    pad = pad_id(tokenizer, model)
    train = encode_squad(read_jsonl(data["train"], required, "training"), backend, pad)
    val = data_setting(data, "val")
    task = ExtractiveQATask(model.config.type_vocab_size > 0)
    task.held_out = encode_squad(read_jsonl(val, required, "validation"), backend, pad) if val else None
    return FinetuneData(task, train, task.held_out)


register_task("qa", build_qa)
