"""Preference pairs for reward-model and DPO training: JSONL rows -> rendered, masked, padded pairs.

A row is `{"prompt": ..., "chosen": ..., "rejected": ...}` (trl's preference format):

    prompt     a string (one user turn) or chat messages [{"role": "user", "content": ...}, ...]
    chosen     the preferred answer: a string, or messages ending with the assistant's turn
    rejected   the other answer, in the same form

Each side is the prompt plus its answer as one conversation, rendered with the chat template (the
model's own, or data.template) exactly as `sft` renders it (llmzoo/finetune/sft_template.py), so the
loss-carrying tokens are the answer's (and its end-of-turn token), never the prompt's.

`builtin:sst2-pairs-train` / `builtin:sst2-pairs-heldout`: an honest offline preference set, built
from GLUE SST-2's gold labels (the halves sft-lora-smollm2 and the `sst2_heldout` eval task use):
the prompt is the eval task's, chosen = the gold label's word, rejected = the other label's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmzoo.errors import LlmzooError
from llmzoo.finetune.rows import read_jsonl
from llmzoo.finetune.sft_template import tokenize_conversation

IGNORE = -100
BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class PreferencePair:
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str


def _prompt(value: Any, where: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    raise LlmzooError(f"{where}: 'prompt' must be a string or a list of {{role, content}} messages")


def _answer(value: Any, key: str, where: str) -> str:
    if isinstance(value, list) and value and isinstance(value[-1], dict) and value[-1].get("role") == "assistant":
        value = value[-1].get("content")
    if not isinstance(value, str):
        raise LlmzooError(f"{where}: {key!r} must be a string or messages ending with the assistant's turn")
    return value


def pair_from_row(row: Any, where: str) -> PreferencePair:
    """One JSONL row as a pair; a missing side or two identical answers is a one-line error."""
    if not isinstance(row, dict):
        raise LlmzooError(f"{where}: expected a JSON object with prompt, chosen and rejected")
    missing = [k for k in ("prompt", "chosen", "rejected") if row.get(k) in (None, "", [])]
    if missing:
        raise LlmzooError(f"{where}: missing {' and '.join(repr(k) for k in missing)}; a preference row needs "
                          f"prompt, chosen and rejected")
    pair = PreferencePair(_prompt(row["prompt"], where), _answer(row["chosen"], "chosen", where),
                          _answer(row["rejected"], "rejected", where))
    if pair.chosen.strip() == pair.rejected.strip():
        raise LlmzooError(f"{where}: 'chosen' and 'rejected' are the same answer, so the pair prefers nothing; "
                          f"drop the row or fix one side")
    return pair


def read_preference_jsonl(path: str | Path) -> list[PreferencePair]:
    return [pair_from_row({k: v for k, v in row.items() if k != "_line"}, f"{path} line {row['_line']}")
            for row in read_jsonl(path, (), "preference data")]


def _sst2_pairs(half: int) -> list[PreferencePair]:
    from llmzoo.eval.tasks.sst2_heldout import LABELS, sst2_halves, sst2_prompt

    return [PreferencePair([{"role": "user", "content": sst2_prompt(doc)}], LABELS[int(doc["label"])],
                           LABELS[1 - int(doc["label"])]) for doc in sst2_halves()[half]]


BUILTIN = {"sst2-pairs-train": lambda: _sst2_pairs(0), "sst2-pairs-heldout": lambda: _sst2_pairs(1)}


def load_pairs(source: Any) -> list[PreferencePair]:
    """A JSONL file's pairs, or a builtin:NAME set."""
    text = str(source)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX):]
        if name not in BUILTIN:
            raise LlmzooError(f"unknown built-in preference data {text!r}; available: "
                              f"{', '.join(BUILTIN_PREFIX + n for n in BUILTIN)}")
        return BUILTIN[name]()
    return read_preference_jsonl(source)


@dataclass(frozen=True)
class TokenizedSide:
    ids: list[int]
    labels: list[int]  # aligned with ids: the token itself where the answer carries the loss, else -100


def tokenize_side(prompt: list[dict], answer: str, template: str, tokenizer) -> TokenizedSide:
    c = tokenize_conversation(prompt + [{"role": "assistant", "content": answer}], template, tokenizer)
    return TokenizedSide(c.ids, [i if t else IGNORE for i, t in zip(c.ids, c.targets)])


def _fit(side: TokenizedSide, seq_len: int) -> TokenizedSide | None:
    """Cut to seq_len; None when no answer token is left to score."""
    if len(side.ids) <= seq_len:
        return side
    cut = TokenizedSide(side.ids[:seq_len], side.labels[:seq_len])
    return cut if any(x != IGNORE for x in cut.labels[1:]) else None


class PairRows:
    """Tokenized pairs; rows(indices) stacks both sides right-padded to one width, so chosen and
    rejected can run as one batch of 2B rows (the first B chosen)."""

    def __init__(self, pairs: list[PreferencePair], template: str, tokenizer, seq_len: int, pad_id: int,
                 what: str = "pairs") -> None:
        self.pad_id = pad_id
        self.sides: list[tuple[TokenizedSide, TokenizedSide]] = []
        cut = dropped = 0
        for p in pairs:
            chosen = tokenize_side(p.prompt, p.chosen, template, tokenizer)
            rejected = tokenize_side(p.prompt, p.rejected, template, tokenizer)
            if chosen.ids == rejected.ids:
                raise LlmzooError(f"a preference pair renders chosen and rejected to the same tokens: {p.chosen!r}")
            long = len(chosen.ids) > seq_len or len(rejected.ids) > seq_len
            fitted = (_fit(chosen, seq_len), _fit(rejected, seq_len))
            cut += long
            if fitted[0] is None or fitted[1] is None:
                dropped += 1
                continue
            self.sides.append(fitted)
        if cut:
            print(f"note: {cut} of {len(pairs)} {what} are longer than seq_len={seq_len} tokens and were truncated"
                  + (f" ({dropped} dropped: no answer token left)" if dropped else ""), file=sys.stdout)

    def __len__(self) -> int:
        return len(self.sides)

    def rows(self, indices) -> dict[str, torch.Tensor]:
        chosen = [self.sides[int(i)] for i in indices]
        width = max(len(s.ids) for pair in chosen for s in pair)
        out: dict[str, torch.Tensor] = {}
        for k, name in enumerate(("chosen", "rejected")):
            sides = [pair[k] for pair in chosen]
            out[f"{name}_input_ids"] = torch.tensor([s.ids + [self.pad_id] * (width - len(s.ids)) for s in sides])
            out[f"{name}_labels"] = torch.tensor([s.labels + [IGNORE] * (width - len(s.ids)) for s in sides])
            out[f"{name}_attention_mask"] = torch.tensor([[1] * len(s.ids) + [0] * (width - len(s.ids)) for s in sides])
        return out


def both_sides(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, labels, attention_mask) of 2B rows: the chosen sides, then the rejected."""
    return tuple(torch.cat([batch[f"chosen_{k}"], batch[f"rejected_{k}"]]) for k in ("input_ids", "labels", "attention_mask"))


DATA_KEYS = ("train", "val", "val_fraction", "template")


def build_pair_rows(recipe, tokenizer, model, task: str, extra_keys: tuple[str, ...] = ()) -> tuple[PairRows, PairRows | None]:
    """Train and held-out PairRows from recipe.data (train, val or val_fraction, template)."""
    from llmzoo.errors import ConfigError
    from llmzoo.finetune.sft_template import resolve_template

    data = dict(recipe.data or {})
    known = DATA_KEYS + extra_keys
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {task} data setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not data.get("train"):
        raise ConfigError(f"task {task} needs data.train=FILE.jsonl (prompt/chosen/rejected rows) or a builtin:NAME set "
                          f"({', '.join(BUILTIN_PREFIX + n for n in BUILTIN)})")
    if tokenizer is None:
        raise ConfigError(f"task {task} renders text, but {recipe.model.get('from')!r} has no tokenizer; set tokenizer=...")
    template = resolve_template(data.get("template"), tokenizer, str(recipe.model.get("from")))
    train = load_pairs(data["train"])
    if data.get("val"):
        val = load_pairs(data["val"])
    else:  # the file's last share, as sft holds out
        fraction = float(data.get("val_fraction", 0.1))
        cut = len(train) - max(1, int(len(train) * fraction)) if len(train) > 1 and fraction > 0 else len(train)
        train, val = train[:cut], train[cut:]
    pad = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, model.config.pad_token_id, 0) if i is not None)
    seq_len = int(recipe.seq_len)
    train_rows = PairRows(train, template, tokenizer, seq_len, pad, "training pairs")
    val_rows = PairRows(val, template, tokenizer, seq_len, pad, "held-out pairs") if val else None
    if len(train_rows) == 0:
        raise LlmzooError(f"task {task}: no training pair fits seq_len={seq_len}; raise seq_len")
    return train_rows, val_rows
