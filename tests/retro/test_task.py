"""RETRO through the one training loop (`task: retro`, the built-in recipe retro-shakespeare): a database of
Macbeth built by `llmzoo retro index` from the offline Shakespeare asset, the recipe run through the CLI for a
few steps (a model load_retro reads, equal to the last checkpoint), a resumed run equal step for step to an
uninterrupted one, every row's neighbours sharing no token with the row (over every training row), DDP over
two processes giving the single process's losses, and recipe mistakes as one-line exit-2 errors."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from llmzoo.cli import main
from llmzoo.errors import AssetMissingError
from llmzoo.train import checkpoint as ckpt_io
from tests.train.helpers import train_losses

M, T = 16, 64  # chunk and row length: 4 chunks per row

# a tiny model, so a step takes well under a second on one core (most of it the 50k-wide head)
TINY = ["model.decoder.d_model=32", "model.decoder.d_ff=64", "model.decoder.n_heads=4", "model.decoder.n_layers=2",
        "model.encoder.d_model=16", "model.encoder.d_ff=32", "model.encoder.n_heads=2", f"seq_len={T}",
        "batch_size=4", "progress=false", "peak_flops=1e9", "threads=1"]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from llmzoo.assets import asset_path
    from llmzoo.rag.embedder import load_embedder

    try:
        load_embedder("all-minilm-l6-v2")
        asset_path("shakespeare", "shksprdata/texts/macbeth_gut.txt")
    except AssetMissingError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("retro") / "db"
    assert main(["retro", "index", "asset:shakespeare/shksprdata/texts/macbeth_gut.txt", "--out", str(out),
                 "--chunk", str(M)]) == 0
    return out


def pretrain(db, run_dir, *overrides: str) -> int:
    return main(["pretrain", "--recipe", "retro-shakespeare", f"data.db={db}", f"run_dir={run_dir}", *TINY, *overrides])


def test_the_recipe_trains_and_leaves_a_model_load_retro_reads(db, tmp_path, capsys):
    from llmzoo.retro import load_db
    from llmzoo.retro.checkpoint import load_retro
    from llmzoo.retro.retriever import retrieve_db_rows

    run = tmp_path / "run"
    assert pretrain(db, run, "max_steps=20", "lr=3e-3", "warmup_steps=2", "checkpoint_every=10", "eval_every=10") == 0
    out = capsys.readouterr().out
    assert "done: 20 steps" in out and "val loss" in out and f"model: {run / 'model'}" in out
    losses = list(train_losses(run).values())
    assert len(losses) == 20 and (run / "loss_curve.png").is_file()
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5  # it learns (from ~log V = 10.8 nats)
    model = load_retro(run / "model")
    last = load_file(ckpt_io.complete_checkpoints(run)[-1] / "model.safetensors")
    assert all(torch.equal(t, last[name]) for name, t in model.state_dict().items())  # the trained weights
    assert model.config.chunk == M and model.config.cca_layers == [1]  # cca_start 2, every 2, of 2 layers
    data = load_db(db)
    starts = torch.tensor([0, 5 * T])
    ids = data.tokens[starts[:, None] + torch.arange(T)]
    with torch.no_grad():  # the trained CCA reads the neighbours: they change what it predicts
        read = model(ids, neighbours=retrieve_db_rows(data, starts, T, 2)).logits
        assert not torch.allclose(read, model(ids).logits)


def test_a_resumed_run_repeats_the_uninterrupted_one(db, tmp_path):
    whole = tmp_path / "whole"
    assert pretrain(db, whole, "max_steps=6", "checkpoint_every=3", "eval_every=0") == 0
    reference = train_losses(whole)
    assert sorted(reference) == list(range(1, 7))
    # what a run killed after its step-3 checkpoint leaves behind
    killed = tmp_path / "killed"
    shutil.copytree(whole, killed)
    for later in [c for c in ckpt_io.complete_checkpoints(killed) if ckpt_io.checkpoint_step(c) > 3]:
        shutil.rmtree(later)
    shutil.rmtree(killed / "model")
    assert main(["pretrain", "--resume", str(killed)]) == 0
    resumed = train_losses(killed)
    assert [resumed[s] for s in range(4, 7)] == [reference[s] for s in range(4, 7)]  # bit for bit
    a, b = (load_file(d / "model" / "model.safetensors") for d in (whole, killed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_row_retrieves_its_own_text(db):
    # Over every training row the loop can draw (batches as its sampler makes them), no neighbour (a chunk
    # and its continuation, 2m tokens) shares a token with the row's inputs or targets; and the exclusion is
    # what keeps them out: unexcluded, each chunk's nearest database chunk is itself.
    from llmzoo.finetune.registry import get_task
    from llmzoo.train.batches import ExampleSampler
    from llmzoo.train.finetune import load_base
    from llmzoo.train.recipe import load_recipe

    recipe = load_recipe("retro-shakespeare", [f"data.db={db}", *TINY])
    model = load_base(recipe)
    data = get_task("retro")(recipe, None, model)
    sampler = ExampleSampler(data.train, recipe.seed)
    seen = 0
    for first in range(0, len(data.train), 16):
        batch = sampler.rows(first, min(16, len(data.train) - first))
        starts, chunks = batch["starts"], batch["neighbour_chunks"]  # (B,), (B, T // M, k)
        assert torch.equal(batch["input_ids"], data.train.db.tokens[starts[:, None] + torch.arange(T)])
        assert torch.equal(batch["neighbours"], data.train.db.values(chunks))
        lo, hi = chunks * M, chunks * M + 2 * M  # each neighbour's tokens [lo, hi)
        row_lo, row_hi = starts[:, None, None], starts[:, None, None] + T + 1
        assert bool(((hi <= row_lo) | (lo >= row_hi)).all())
        seen += len(starts)
    assert seen == len(data.train) > 100
    db_ = data.train.db
    own = torch.arange(len(db_.keys) - 1)
    assert float((db_.search(db_.keys[own], 1)[:, 0] == own).float().mean()) > 0.95  # (a few chunks repeat)


@pytest.mark.parametrize("overrides, words", [
    (["seq_len=60"], "multiple of the database's chunk 16"),
    (["model.decoder.cca_chunk=8"], "set by the task"),
    (["model.decoder.n_layer=2"], "did you mean 'model.n_layers'"),
    (["model.cca_star=2"], "did you mean 'cca_start'"),
    (["model.cca_start=two"], "model.cca_start must be an integer"),
    (["model.n_neighbours=0"], "n_neighbours must be >= 1"),
    (["sample_tokens=10"], "llmzoo.retro.generate"),
    (["peft.method=lora"], "from scratch"),
])
def test_recipe_mistakes_are_one_line_exit_2(db, tmp_path, capsys, overrides, words):
    assert pretrain(db, tmp_path / "run", *overrides) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


def test_a_missing_database_names_the_index_command(tmp_path, capsys):
    assert main(["pretrain", "--recipe", "retro-shakespeare", f"data.db={tmp_path / 'nodb'}", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "llmzoo retro index" in err


def test_finetune_refuses_the_from_scratch_recipe(db, capsys):
    assert main(["finetune", "--recipe", "retro-shakespeare", f"data.db={db}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "llmzoo pretrain" in err


def test_ddp_over_two_processes_gives_the_single_process_losses(db, tmp_path):
    # Each rank retrieves for its own rows; the mean of the ranks' losses and gradients is the batch's.
    from tests.train.helpers import cli

    assert pretrain(db, tmp_path / "one", "max_steps=3", "checkpoint_every=0", "eval_every=0") == 0
    short = [f"data.db={db}", f"run_dir={tmp_path / 'ddp'}", *TINY, "max_steps=3", "checkpoint_every=0", "eval_every=0"]
    out = cli("pretrain", "--nproc-per-node", "2", "--recipe", "retro-shakespeare", "parallel=ddp", *short)
    assert out.returncode == 0, out.stderr[-3000:]
    one, ddp = train_losses(tmp_path / "one"), train_losses(tmp_path / "ddp")
    assert sorted(ddp) == [1, 2, 3]
    assert all(abs(ddp[s] - one[s]) <= 1e-5 * abs(one[s]) for s in one)  # summed in another order only
