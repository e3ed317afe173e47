"""benchmarks/smollm2_table.py: a task run in disjoint parts counts as one run over all its documents."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("smollm2_table", ROOT / "benchmarks" / "smollm2_table.py")
table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table)


def _write(path: Path, task: str, acc: float, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": {task: {"acc": acc, "n": n}}, "config": {"tasks": [task]}}))


def test_parts_are_weighted_by_documents(tmp_path):
    # 3 of 4 right in the first part, 1 of 6 in the shard: 4 of 10 over all of them
    _write(tmp_path / "hellaswag.json", "hellaswag", 0.75, 4)
    _write(tmp_path / "hellaswag" / "hellaswag_4-9.json", "hellaswag", 1 / 6, 6)
    assert table.read_task(tmp_path, "hellaswag", "acc") == (pytest.approx(0.4), 10)
    # MMLU one subject per file: the accuracy over all questions, as lm-eval's weight_by_size group
    _write(tmp_path / "mmlu" / "mmlu_anatomy.json", "mmlu_anatomy", 0.5, 2)
    _write(tmp_path / "mmlu" / "mmlu_virology.json", "mmlu_virology", 0.0, 8)
    assert table.read_task(tmp_path, "mmlu", "acc") == (pytest.approx(0.1), 10)
    assert table.read_task(tmp_path, "piqa", "acc") is None
