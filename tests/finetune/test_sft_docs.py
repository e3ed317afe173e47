"""docs/sft.md as a user runs it: every command it shows, shortened (a tiny random base with
SmolLM2-Instruct's tokenizer and chat template in place of the real model, two steps)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.finetune.sft_helpers import tiny_chat_base, write_jsonl
from tests.train.helpers import REPO

DOC = REPO / "docs" / "sft.md"
SHORT = ["seq_len=128", "batch_size=2", "max_steps=2", "eval_every=2", "eval_batches=1", "checkpoint_every=2",
         "threads=1", "peak_flops=1e11", "progress=false"]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _commands() -> list[str]:
    return [line for block in _blocks("bash") for line in block.splitlines() if line.startswith("llmzoo ")]


def _run(workdir: Path, command: str, *extra: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("llmzoo")  # the console script, as users run it
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "llmzoo"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([*argv, *shlex.split(command)[1:], *extra], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Where the user runs the commands: my_sft.yaml and my_chats.jsonl from the doc, a seeds file."""
    work = tmp_path_factory.mktemp("sft_docs")
    tiny_chat_base(work / "base")
    [recipe] = _blocks("yaml")
    [rows] = _blocks("json")
    (work / "my_sft.yaml").write_text(recipe)
    (work / "my_chats.jsonl").write_text(rows * 3)
    write_jsonl(work / "seeds.jsonl", [{"instruction": "Give three tips for staying healthy."},
                                       {"instruction": "Translate the sentence into French."}])
    return work


def test_the_doc_shows_the_commands_this_test_runs():
    assert [c.split()[1] for c in _commands()] == ["finetune", "eval", "finetune", "data"]


@pytest.mark.asset
def test_every_command_of_the_doc_runs(workdir):
    base = str(workdir / "base")
    for command in _commands():
        if command.startswith("llmzoo finetune"):
            # the tiny base has 2 blocks, not SmolLM2's 30: LoRA on its last one stands in for the top ten
            layers = ["peft.target_modules=layers\\.1\\..*_proj"] if "sft-lora-smollm2" in command else []
            done = _run(workdir, command, f"model.from={base}", *SHORT, *layers)
            assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
            name = "sft-lora-smollm2" if "sft-lora-smollm2" in command else "my-sft"
            assert (workdir / "runs" / name / "adapter" / "adapter_config.json").is_file()
            assert (workdir / "runs" / name / "model").is_dir()
        elif command.startswith("llmzoo eval"):
            out = workdir / "eval.json"
            done = _run(workdir, command, "--limit", "2", "--json", str(out))
            assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
            assert 0.0 <= json.loads(out.read_text())["results"]["sst2_heldout"]["acc"] <= 1.0
        else:
            done = _run(workdir, command.replace("smollm2-135m-instruct", base).replace("--n 20", "--n 1"),
                        "--max-new-tokens", "16")
            assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
            rows = [json.loads(line) for line in (workdir / "generated.jsonl").read_text().splitlines()]
            assert len(rows) == 1 and rows[0]["instruction"]


def _readme_commands() -> list[str]:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("### Supervised fine-tuning (SFT)")[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("llmzoo ")]


@pytest.mark.asset
def test_the_readme_sft_commands_run_in_order(tmp_path):
    """README's before / fine-tune / after commands, with the tiny base standing in for SmolLM2.
    A directory of its own: the doc's test leaves runs/sft-lora-smollm2 behind, and a second
    fine-tune into it is (rightly) refused without --resume."""
    workdir = tmp_path
    base = str(tiny_chat_base(workdir / "base"))
    commands = _readme_commands()
    assert [c.split()[1] for c in commands] == ["eval", "finetune", "eval"]
    for command in commands:
        if command.startswith("llmzoo finetune"):
            done = _run(workdir, command, f"model.from={base}", *SHORT, "peft.target_modules=layers\\.1\\..*_proj",
                        "run_dir=runs/sft-lora-smollm2")
        else:
            done = _run(workdir, command.replace("smollm2-135m-instruct", base), "--limit", "2")
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        if command.startswith("llmzoo eval"):
            assert "sst2_heldout" in done.stdout
