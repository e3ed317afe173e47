"""Exact resume: a run killed with SIGKILL and resumed gives the same per-step losses, bit for
bit, as a run that was never interrupted; a kill in the middle of writing a checkpoint leaves
nothing that looks like a complete checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from llmzoo.train import checkpoint as ckpt_io
from llmzoo.train.loop import train
from llmzoo.train.recipe import recipe_from_dict
from tests.train.helpers import REPO, cli, faults, make_token_data, tiny_recipe, train_losses, write_recipe

STEPS = 30


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    data = make_token_data(base / "data")
    recipe = tiny_recipe(data, base / "reference", max_steps=STEPS, checkpoint_every=5, eval_every=10, keep_last=3,
                         lr=1e-2)
    reference = train(recipe_from_dict(recipe))
    assert sorted(reference.losses) == list(range(1, STEPS + 1))
    return base, recipe, reference.losses


def _launch(recipe_file, run_dir, *overrides, **fault_spec):
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **faults(**fault_spec)}
    return subprocess.Popen([sys.executable, "-m", "llmzoo", "pretrain", "--recipe", str(recipe_file),
                             f"run_dir={run_dir}", *overrides], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_run_then_resume_is_bit_exact(setup):
    base, recipe, reference = setup
    run_dir = base / "killed"
    recipe_file = write_recipe(base / "killed.yaml", recipe)
    proc = _launch(recipe_file, run_dir, step_delay=0.05)
    deadline = time.monotonic() + 180
    while max(train_losses(run_dir), default=0) < 12:
        assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "training did not reach step 12"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(train_losses(run_dir))
    assert 12 <= killed_at < STEPS
    latest = ckpt_io.complete_checkpoints(run_dir)[-1]
    assert ckpt_io.checkpoint_step(latest) <= killed_at

    done = cli("pretrain", "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = train_losses(run_dir)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert resumed == reference  # exact float equality, every step


def test_kill_while_writing_a_checkpoint_leaves_no_complete_looking_checkpoint(setup):
    base, recipe, reference = setup
    run_dir = base / "crashed"
    recipe_file = write_recipe(base / "crashed.yaml", recipe)
    proc = _launch(recipe_file, run_dir, crash_in_checkpoint=15)
    proc.wait(timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]

    root = run_dir / "checkpoints"
    partial = [p for p in root.iterdir() if p.name.startswith(".tmp-step_0000015")]
    assert partial and (partial[0] / "model.safetensors").exists() and not (partial[0] / "COMPLETE").exists()
    assert not (root / "step_0000015").exists()
    assert [ckpt_io.checkpoint_step(p) for p in ckpt_io.complete_checkpoints(run_dir)] == [0, 5, 10]
    assert ckpt_io.find_checkpoint(run_dir).name == "step_0000010"

    resumed = train(recipe_from_dict({**recipe, "run_dir": str(run_dir)}), resume=run_dir)
    assert resumed.losses == reference
    assert not any(p.name.startswith(".tmp-") for p in root.iterdir())  # the next save cleaned up
    assert [ckpt_io.checkpoint_step(p) for p in ckpt_io.complete_checkpoints(run_dir)] == [20, 25, 30]  # keep_last=3
