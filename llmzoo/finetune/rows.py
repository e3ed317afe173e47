"""Rows of variable length, padded per batch: the row datasets of the encoder and seq2seq tasks.

`rows(indices)` is a pure function of the indices (the loop's contract, llmzoo/finetune/registry.py):
each batch is padded to its own longest row, so a batch costs what its rows need.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from llmzoo.errors import LlmzooError


class PaddedRows:
    """Examples as dicts of equal-length int lists (sequence features) or ints (per-example
    targets); `pad` gives each sequence feature's padding value."""

    def __init__(self, examples: list[dict[str, Any]], pad: dict[str, int]) -> None:
        self.examples = examples
        self.pad = pad

    def __len__(self) -> int:
        return len(self.examples)

    def rows(self, indices: list[int]) -> dict[str, torch.Tensor]:
        chosen = [self.examples[i] for i in indices]
        batch: dict[str, torch.Tensor] = {}
        for key in chosen[0]:
            values = [ex[key] for ex in chosen]
            if key not in self.pad:
                batch[key] = torch.tensor(values, dtype=torch.long)
                continue
            width = max(len(v) for v in values)
            batch[key] = torch.tensor([v + [self.pad[key]] * (width - len(v)) for v in values], dtype=torch.long)
        return batch


def read_jsonl(path: str | Path, required: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    """Rows of a JSONL file, each a JSON object holding the `required` keys; a malformed line is a
    one-line LlmzooError naming the file and the line."""
    file = Path(path)
    if not file.is_file():
        raise LlmzooError(f"{what} file {file} does not exist")
    rows = []
    with open(file, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise LlmzooError(f"{file}:{number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise LlmzooError(f"{file}:{number}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in required if k not in row]
            if missing:
                raise LlmzooError(f"{file}:{number}: {what} row lacks {', '.join(map(repr, missing))} "
                                  f"(keys: {', '.join(sorted(row)) or 'none'})")
            rows.append(row | {"_line": number})
    if not rows:
        raise LlmzooError(f"{what} file {file} has no rows")
    return rows


def data_setting(data: dict[str, Any] | None, key: str, default: Any = None) -> Any:
    return (data or {}).get(key, default)


def deterministic_split(rows: list, train_fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out) halves of `rows` by a seeded permutation: the same split on every run."""
    if not 0 < train_fraction < 1:
        raise LlmzooError(f"data.train_fraction must be between 0 and 1, got {train_fraction}")
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = int(round(len(rows) * train_fraction))
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]
