"""Sequence-to-sequence fine-tuning of an encoder-decoder (T5, BART) on prompted tasks, the way
T0 (Sanh et al. 2022) and FLAN (Wei et al. 2022) cast every task as text in, text out: the prompt
is the encoder's input, the target the decoder's, trained by teacher-forced cross-entropy on the
target tokens.

    # t0.yaml: task: seq2seq, model: {from: DIR}, data: {train: train.jsonl, prompt: "...", response: "..."}
    llmzoo finetune --recipe t0.yaml

Data (recipe `data:`): JSONL `train` (and `val`) rows with `source` and `target`, or any fields
rendered by `prompt` and `response` templates (Python format strings over the row's fields, e.g.
`prompt: "Question: {question} Answer:"`, `response: "{answer}"`; T0's prompted datasets in the
same spirit). `max_source_len` / `max_target_len` cap the tokens (default: the recipe's seq_len).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from llmzoo.errors import LlmzooError
from llmzoo.finetune.registry import FinetuneData, register_task
from llmzoo.finetune.rows import PaddedRows, data_setting, read_jsonl


class Seq2SeqTask:
    """Teacher forcing: the model shifts `labels` right behind its decoder start token."""

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": batch["labels"]}

    def loss(self, outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = outputs.logits
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch["labels"].reshape(-1), ignore_index=-100)

    def token_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["attention_mask"].sum() + (batch["labels"] != -100).sum())


def render(template: str, row: dict[str, Any], what: str) -> str:
    try:
        return template.format(**row)
    except KeyError as e:
        raise LlmzooError(f"row {row['_line']}: data.{what} template names field {e.args[0]!r}, which the row lacks "
                          f"(fields: {', '.join(k for k in sorted(row) if k != '_line')})") from None


def encode_pairs(rows: list[dict[str, Any]], data: dict | None, tokenizer, model, default_len: int) -> PaddedRows:
    config = model.config
    if config.pad_token_id is None or config.decoder_start_token_id is None:
        raise LlmzooError(f"{config.name} lacks pad_token_id/decoder_start_token_id in its config; a seq2seq fine-tune "
                          f"needs both (T5: pad is the start token)")
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else config.eos_token_id
    prompt, response = data_setting(data, "prompt", "{source}"), data_setting(data, "response", "{target}")
    max_source = int(data_setting(data, "max_source_len", default_len))
    max_target = int(data_setting(data, "max_target_len", default_len))
    examples = []
    for row in rows:
        source = tokenizer.encode(render(prompt, row, "prompt"))[:max_source]
        target = tokenizer.encode(render(response, row, "response"))
        if eos is not None and (not target or target[-1] != eos):
            target = target + [eos]  # the decoder learns where to stop
        target = target[:max_target]
        if not source or not target:
            raise LlmzooError(f"row {row['_line']}: the rendered source or target is empty")
        examples.append({"input_ids": source, "attention_mask": [1] * len(source), "labels": target})
    return PaddedRows(examples, {"input_ids": config.pad_token_id, "attention_mask": 0, "labels": -100})


def build_seq2seq(recipe, tokenizer, model) -> FinetuneData:
    if model.config.arch != "encoder_decoder":
        raise LlmzooError(f"task seq2seq fine-tunes an encoder-decoder (T5, BART); {model.config.name} is a "
                          f"{model.config.arch} (for a decoder use an SFT task)")
    if tokenizer is None:
        raise LlmzooError("task seq2seq needs the base model's tokenizer; the source has none, set tokenizer=DIR")
    data = recipe.data
    if data_setting(data, "train") is None:
        raise LlmzooError("set data.train=FILE.jsonl (rows with source and target, or data.prompt/data.response templates)")
    required = ("source", "target") if data_setting(data, "prompt") is None and data_setting(data, "response") is None else ()
    train = encode_pairs(read_jsonl(data["train"], required, "training"), data, tokenizer, model, recipe.seq_len)
    val = data_setting(data, "val")
    val_rows = encode_pairs(read_jsonl(val, required, "validation"), data, tokenizer, model, recipe.seq_len) if val else None
    return FinetuneData(Seq2SeqTask(), train, val_rows)


register_task("seq2seq", build_seq2seq)
