"""docs/finetune.md as a user runs it: its task module, its recipe and every `llmzoo finetune`
command it shows, shortened (a tiny random base with SmolLM2's vocabulary, two steps)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmzoo.train import checkpoint as ckpt_io
from llmzoo.train.recipe import builtin_finetune_recipes
from tests.train.helpers import REPO, train_losses

DOC = REPO / "docs" / "finetune.md"
TOKENIZER = "smollm2-135m-instruct"
SHORT = ["seq_len=16", "batch_size=2", "max_steps=2", "eval_every=1", "eval_batches=1", "checkpoint_every=1",
         "threads=1", "peak_flops=1e11", "progress=false"]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _commands() -> list[str]:
    return [line for block in _blocks("bash") for line in block.splitlines() if line.startswith("llmzoo finetune")]


def _llmzoo() -> list[str]:
    script = Path(sys.executable).with_name("llmzoo")  # the console script, as users run it
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmzoo"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The directory a user runs the commands in: my_tasks.py, my_finetune.yaml, my_text.txt."""
    import llmzoo
    from llmzoo.config import ModelConfig
    from llmzoo.models.build import build_model

    work = tmp_path_factory.mktemp("finetune_docs")
    [module] = _blocks("python")
    [recipe] = _blocks("yaml")
    (work / "my_tasks.py").write_text(module)
    (work / "my_finetune.yaml").write_text(recipe)
    sentences = ["the cat sat on the mat.", "a dog ran in the park.", "birds sing in the morning."]
    (work / "my_text.txt").write_text(" ".join(sentences[i % 3] for i in range(300)))
    torch.manual_seed(0)
    config = ModelConfig(name="tiny-smollm-vocab", vocab_size=49152, d_model=32, n_layers=2, n_heads=4,
                         n_kv_heads=2, d_ff=64, max_seq_len=64)
    llmzoo.save(build_model(config), work / "base")
    return work


def _run(workdir: Path, command: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    argv = [*_llmzoo(), *shlex.split(command)[1:], *extra]
    return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def test_the_doc_shows_the_commands_this_test_runs():
    assert len(_commands()) == 6


def test_help_lists_the_builtin_finetune_recipes(workdir):
    [command] = [c for c in _commands() if c.endswith("--help")]
    done = _run(workdir, command)
    assert done.returncode == 0, done.stderr
    listed = " ".join(done.stdout.split())  # argparse wraps the epilog
    assert builtin_finetune_recipes() and all(name in listed for name in builtin_finetune_recipes())


def test_every_recipe_command_of_the_doc_runs(workdir):
    base = [f"model.from={workdir / 'base'}", f"tokenizer={TOKENIZER}", *SHORT]
    for command in _commands():
        if command.endswith("--help"):
            continue
        if "device=cuda" in command:
            done = _run(workdir, command, *base, "run_dir=runs/cuda")
            if torch.cuda.is_available():
                assert done.returncode == 0, done.stderr[-2000:]
            else:  # refused in one line, nothing written
                assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
                assert "device=cuda" in done.stderr and not (workdir / "runs" / "cuda").exists()
            continue
        if "--resume" in command:  # continues the run the plain command left, one step further
            done = _run(workdir, command, "max_steps=3")
            assert done.returncode == 0, done.stderr[-2000:]
            run = workdir / shlex.split(command)[-1]
            assert sorted(train_losses(run)) == [1, 2, 3]
            continue
        extra = ["run_dir=runs/ddp"] if "--nproc-per-node" in command else []
        done = _run(workdir, command, *base, *extra)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        run = workdir / "runs" / ("ddp" if extra else re.search(r"run_dir=(\S+)", command).group(1).split("/")[-1]
                                   if "run_dir=" in command else "my-finetune")
        assert (run / "adapter" / "adapter_config.json").is_file() and (run / "model" / "config.json").is_file()
        assert ckpt_io.complete_checkpoints(run)
