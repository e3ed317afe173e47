"""The `sft` fine-tuning task: chat/instruction JSONL -> rendered, masked, packed rows + the SFT loss.

Recipe settings (`data:` mapping; see docs/sft.md):

    data.train     JSONL file (messages / ShareGPT / Alpaca / prompt-completion rows) or builtin:NAME
    data.val       the same, optional; without it `data.val_fraction` of train is held out (default 0.05)
    data.format    auto (by each row's keys) | messages | sharegpt | alpaca | prompt_completion
    data.template  auto (the model's chat template) | chatml | alpaca | a jinja2 template string
    data.packing   true: several conversations per row of seq_len tokens, attention kept inside each;
                   false: one conversation per row, padded to the longest of its batch
                   (default true; false under prompt, P- and prefix tuning, whose virtual tokens
                   open a row, so each conversation needs a row of its own)
"""

from __future__ import annotations

import sys
from typing import Any

from llmzoo.errors import ConfigError
from llmzoo.finetune.registry import FinetuneData, register_task
from llmzoo.finetune.sft_builtin import builtin_conversations, is_builtin
from llmzoo.finetune.sft_data import FORMATS, read_sft_jsonl
from llmzoo.finetune.sft_rows import PackedRows, PaddedRows, fit_to_length
from llmzoo.finetune.sft_task import SFTTask
from llmzoo.finetune.sft_template import tokenize_conversation, resolve_template

DATA_KEYS = ("train", "val", "val_fraction", "format", "template", "packing")


def _conversations(source: Any, fmt: str) -> list[list[dict]]:
    return builtin_conversations(source) if is_builtin(source) else read_sft_jsonl(source, fmt)


def _settings(recipe) -> dict[str, Any]:
    data = dict(recipe.data or {})
    unknown = sorted(set(data) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(f"unknown SFT data setting(s) {', '.join(unknown)}; known: {', '.join(DATA_KEYS)}")
    if not data.get("train"):
        raise ConfigError("task sft needs data.train=FILE.jsonl (chat/instruction rows) or a builtin:NAME source")
    if data.get("format", "auto") not in FORMATS:
        raise ConfigError(f"data.format {data['format']!r} is not one of {', '.join(FORMATS)}")
    return data


def build_sft(recipe, tokenizer, model) -> FinetuneData:
    """The recipe's SFT data as row datasets, and the SFT loss (the registry's builder contract)."""
    data = _settings(recipe)
    if tokenizer is None:
        raise ConfigError(f"task sft renders text, but {recipe.model.get('from')!r} has no tokenizer; set tokenizer=...")
    fmt = data.get("format", "auto")
    template = resolve_template(data.get("template"), tokenizer, str(recipe.model.get("from")))
    train = _conversations(data["train"], fmt)
    if data.get("val"):
        val = _conversations(data["val"], fmt)
    else:  # the last share of the file, so the split does not move when the file grows at its end
        fraction = float(data.get("val_fraction", 0.05))
        cut = len(train) - max(1, int(len(train) * fraction)) if len(train) > 1 and fraction > 0 else len(train)
        train, val = train[:cut], train[cut:]
    seq_len = int(recipe.seq_len)
    packing = _packing(data.get("packing"), model)
    pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if i is not None)

    def rows(conversations: list[list[dict]], what: str):
        tokenized = [tokenize_conversation(c, template, tokenizer) for c in conversations]
        tokenized = fit_to_length(tokenized, seq_len, what, out=sys.stdout)
        if packing:
            return PackedRows(tokenized, seq_len, pad_id)
        return PaddedRows(tokenized, pad_id)

    train_rows = rows(train, "training conversations")
    val_rows = rows(val, "validation conversations") if val else None
    return FinetuneData(SFTTask(), train_rows, val_rows)


def _packing(asked: Any, model: Any) -> bool:
    """Packed rows unless asked otherwise or the adapter prepends virtual tokens: those open a row, so
    packed conversations after the first would train without them (and their document mask would
    hide the virtual tokens)."""
    from llmzoo.peft.virtual_tokens import VirtualTokens

    virtual = next((m for m in model.modules() if isinstance(m, VirtualTokens)), None)
    if asked is None:
        return virtual is None
    if asked and virtual is not None:
        raise ConfigError(f"data.packing=true cannot be combined with a {type(virtual).__name__} adapter (its "
                          f"virtual tokens open each row); set data.packing=false or leave it out")
    return bool(asked)


register_task("sft", build_sft)
