"""Objectives with their own model side train under the data-parallel layouts as one process would.

For each kind of model side (a plain decoder, a plain encoder, an encoder-decoder, ELECTRA's
generator + discriminator, SpanBERT's boundary head, XLM's language embeddings, GLM's 2D
positions, XLNet's two streams) two gloo processes under DDP and FSDP train on the same global
batches as one process, and their per-step losses must equal its losses. The corruption is drawn
for the whole batch, and targets per process differ (MLM masks ~15% of each row), so this fails
if a rank corrupts only its own rows, if token means are averaged per process instead of over the
batch, or if the objective's own forward is skipped behind the wrapper.

Layouts that cannot serve an objective refuse before training, in one line, printed once.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from llmzoo.cli import main
from llmzoo.train.loop import train
from llmzoo.train.recipe import load_recipe
from tests.train.helpers import REPO, cli, prepare_hamlet_run, run_workers, train_losses

KINDS = {
    "decoder": ["objective=prefix_lm"],
    "encoder": ["objective=mlm", "model.from=bert-base", "model.head=mlm", "model.pooler=null"],
    "encoder_decoder": ["objective=t5_span", "model.from=t5-base"],
    "electra": ["objective=electra", "model.from=electra-base"],
    "spanbert": ["objective=spanbert", "model.from=spanbert-base"],
    "xlm": ["objective=xlm_mlm", "model.from=xlm-100", "model.head=mlm", "model.type_vocab_size=0"],
    "glm": ["objective=glm", "model.position_2d=true", "model.position=learned"],
    "xlnet": ["objective=xlnet", "model.from=xlnet-base"],
}
MODES = ("ddp", "fsdp")
# The broader matrix (slow): ZeRO-1/2 for every kind, TP where the model splits by heads.
SLOW_MODES = {kind: ("zero1", "zero2") for kind in KINDS}
for kind in ("decoder", "encoder", "spanbert", "xlm", "glm"):
    SLOW_MODES[kind] += ("tp",)
STEPS = 3
TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.d_ff=64", "model.max_seq_len=64",
        "seq_len=32", "batch_size=4", f"max_steps={STEPS}", "eval_every=0", "checkpoint_every=0",
        "progress=false", "threads=1", "sample_tokens=0"]
# fp32 on CPU: layouts differ only by summation order
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One tokenizer + token dataset (one play) for every run of this module."""
    run = prepare_hamlet_run(tmp_path_factory, "max_steps=1", "eval_every=0", "checkpoint_every=0", "progress=false",
                             "threads=1", "batch_size=4", "sample_tokens=0")
    return [f"data={run}/data", f"tokenizer={run}/tokenizer"]


def _overrides(prepared, kind, run_dir, *extra) -> list[str]:
    return [*KINDS[kind], *prepared, *TINY, f"run_dir={run_dir}", *extra]


def _matrix(prepared, base, modes: dict[str, tuple[str, ...]]):
    single = {k: train(load_recipe("objectives", _overrides(prepared, k, base / f"{k}_single"))).losses for k in modes}
    spec = {"runs": [{"name": f"{k}_{m}",
                      "recipe": load_recipe("objectives", _overrides(prepared, k, base / f"{k}_{m}",
                                                                     f"parallel={m}")).to_dict()}
                     for k, ms in modes.items() for m in ms]}
    results = run_workers(spec, base, timeout=600)[0]
    return single, {name: {int(s): v for s, v in d.items()} for name, d in results.items()}


def _assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([got[s] for s in want], [want[s] for s in want], rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def runs(prepared, tmp_path_factory):
    return _matrix(prepared, tmp_path_factory.mktemp("objdist"), {k: MODES for k in KINDS})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_objective_layout_matches_single_process(runs, kind, mode):
    single, dist = runs
    _assert_same(dist[f"{kind}_{mode}"], single[kind])


@pytest.mark.slow
def test_objectives_under_zero_and_tensor_parallel_match_single_process(prepared, tmp_path):
    single, dist = _matrix(prepared, tmp_path, SLOW_MODES)
    for kind, modes in SLOW_MODES.items():
        for mode in modes:
            _assert_same(dist[f"{kind}_{mode}"], single[kind])


def test_nproc_per_node_launches_the_workers(prepared, tmp_path, runs):
    """`llmzoo pretrain --nproc-per-node 2` trains ELECTRA under DDP as torchrun would: the single
    process's losses, one report."""
    single, _ = runs
    out = cli("pretrain", "--nproc-per-node", "2", "--recipe", "objectives",
              *_overrides(prepared, "electra", tmp_path / "run", "parallel=ddp"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("done: 3 steps") == 1
    _assert_same(train_losses(tmp_path / "run"), single["electra"])


REFUSALS = [
    ("pp", "electra", "parallel=pp trains the clm objective only, not 'electra'"),
    ("tp", "xlnet", "parallel=tp cannot train objective 'xlnet'"),
    ("tp", "electra", "parallel=tp over 2 processes cannot train objective 'electra'"),
]


@pytest.mark.parametrize("mode, kind, message", REFUSALS[:2])
def test_layout_that_cannot_serve_an_objective_refuses_in_one_line(prepared, tmp_path, mode, kind, message):
    out = cli("pretrain", "--nproc-per-node", "2", "--recipe", "objectives",
              *_overrides(prepared, kind, tmp_path / "run", f"parallel={mode}"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]  # one line, no traceback, no launcher log
    assert out.stderr.startswith(f"error: {message}")


def test_torchrun_worker_error_is_printed_once_without_our_traceback(prepared, tmp_path):
    """Plain torchrun: rank 0 prints llmzoo's line, each worker exits 2 without a Python traceback;
    what remains is torchrun's own failure summary (which shows the same message)."""
    mode, kind, message = REFUSALS[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "llmzoo",
                          "pretrain", "--recipe", "objectives",
                          *_overrides(prepared, kind, tmp_path / "run", f"parallel={mode}")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert out.returncode != 0
    ours = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("error: ")]
    assert len(ours) == 1 and ours[0].startswith(f"error: {message}"), out.stderr[-3000:]
    assert "llmzoo/" not in out.stderr.replace("llmzoo FAILED", "")  # no frame of ours in any traceback
    assert "exitcode  : 2" in out.stderr


def test_objective_on_a_model_without_a_head_names_the_head_to_add(prepared, tmp_path, capsys):
    """xlm-100's zoo config has no output head: the run says which to add, not which output is missing."""
    code = main(["pretrain", "--recipe", "objectives", "objective=xlm_mlm", "model.from=xlm-100", *prepared, *TINY,
                 f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: objective 'xlm_mlm' scores the model's token predictions, but model "
                                 "'xlm-100' has no output head (head='none'); add model.head=mlm"]


def test_fsdp_resumes_a_model_with_shared_parameters(prepared, tmp_path, runs):
    """ELECTRA's generator reads the discriminator's embeddings (one tensor, two names): an FSDP run
    resumes from its own checkpoint and continues the single-process loss curve."""
    single, _ = runs
    run = tmp_path / "run"
    first = cli("pretrain", "--nproc-per-node", "2", "--recipe", "objectives",
                *_overrides(prepared, "electra", run, "parallel=fsdp", "max_steps=2", "checkpoint_every=1"))
    assert first.returncode == 0, first.stderr[-3000:]
    again = cli("pretrain", "--nproc-per-node", "2", "--resume", str(run), f"max_steps={STEPS}")
    assert again.returncode == 0, again.stderr[-3000:]
    _assert_same(train_losses(run), single["electra"])
