"""`llmzoo pretrain` refuses, in one `error:` line and before any work, the runs of issue 18 that
used to blow up memory, train past the model's positions, or fail with a traceback late."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmzoo.cli import main
from llmzoo.train import preflight
from llmzoo.train.checkpoint import complete_checkpoints
from tests.train.helpers import make_token_data, tiny_recipe, write_recipe

ONE_STEP = ["max_steps=1", "eval_every=0", "checkpoint_every=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_token_data(tmp_path_factory.mktemp("preflight") / "data")


def _expect_error(capsys, argv, message):
    code = main(["pretrain", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    return err[0]


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _nothing_prepared(run_dir):
    # the Shakespeare recipe trains a tokenizer and writes shards into run_dir first: a refusal
    # must come before either, and leave no empty run_dir behind
    assert not run_dir.exists()


# --- item 4: seq_len, data size, memory --------------------------------------------------------


def test_seq_len_far_beyond_the_model_is_refused_before_data_preparation(tmp_path, capsys):
    run = tmp_path / "run"
    _expect_error(capsys, ["--recipe", "shakespeare", f"run_dir={run}", "seq_len=100000", "max_steps=3"],
                  "seq_len=100000 is longer than the model's max_seq_len=256")
    _nothing_prepared(run)


def test_rope_model_past_max_seq_len_needs_an_explicit_override(tmp_path, data, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, tmp_path / "run"))  # RoPE, max_seq_len 64
    _expect_error(capsys, ["--recipe", str(recipe), "seq_len=80"], "allow_long_sequences=true")
    _expect_error(capsys, ["--recipe", "shakespeare", f"run_dir={tmp_path / 'sh'}", "seq_len=512"],
                  "raise model.max_seq_len")
    _nothing_prepared(tmp_path / "sh")
    # either fix trains
    assert main(["pretrain", "--recipe", str(recipe), "seq_len=80", "model.max_seq_len=80", f"run_dir={tmp_path / 'a'}",
                 *ONE_STEP]) == 0
    assert main(["pretrain", "--recipe", str(recipe), "seq_len=80", "allow_long_sequences=true",
                 f"run_dir={tmp_path / 'b'}", *ONE_STEP]) == 0


def test_learned_positions_cannot_be_overridden_past_their_table(tmp_path, data, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, tmp_path / "run"))
    _expect_error(capsys, ["--recipe", str(recipe), "model.position=learned", "seq_len=80", "allow_long_sequences=true"],
                  "learned positions have 64 rows")


def test_data_smaller_than_one_batch_is_refused_before_the_model_is_built(tmp_path, capsys):
    small = make_token_data(tmp_path / "small", train_tokens=100, val_tokens=40)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(small, tmp_path / "run"))  # batch 4 x 16
    _expect_error(capsys, ["--recipe", str(recipe), "batch_size=8"],
                  "the training data holds 100 tokens, fewer than one batch of batch_size 8 x seq_len 16")
    assert not complete_checkpoints(tmp_path / "run")
    assert main(["pretrain", "--recipe", str(recipe), "batch_size=4", *ONE_STEP]) == 0  # 4 windows of 17 fit


def test_llama_7b_is_refused_in_seconds_naming_the_estimate(tmp_path, capsys, monkeypatch):
    # The estimate (~120 GB: 16 bytes per parameter plus activations) against a machine with 24 GB:
    # fixed here, so the test means the same on a machine with more memory.
    monkeypatch.setattr(preflight, "available_memory", lambda: 24e9)
    rss = _rss()
    line = _expect_error(capsys, ["--recipe", "shakespeare", f"run_dir={tmp_path / 'run'}", "model=llama-7b"],
                         "but 24 GB is available")
    assert _rss() - rss < 1e9  # nothing of 7B parameters was allocated
    assert "this run needs about 1" in line and "allow_large_memory=true" in line
    _nothing_prepared(tmp_path / "run")


def test_a_model_no_machine_here_holds_is_refused_without_patching(tmp_path, capsys):
    _expect_error(capsys, ["--recipe", "shakespeare", f"run_dir={tmp_path / 'run'}", "model=llama-2-70b"],
                  "set allow_large_memory=true to try anyway")


def test_memory_refusal_is_overridable(tmp_path, data, capsys, monkeypatch):
    monkeypatch.setattr(preflight, "available_memory", lambda: 1e6)  # 1 MB free
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, tmp_path / "run"))
    _expect_error(capsys, ["--recipe", str(recipe)], "but 1 MB is available")
    assert main(["pretrain", "--recipe", str(recipe), "allow_large_memory=true", *ONE_STEP]) == 0


def test_memory_estimate_counts_what_training_keeps(data, tmp_path):
    from llmzoo.train.recipe import load_recipe

    recipe = load_recipe(tiny_recipe(data, tmp_path / "run"), ["model=llama-7b", "batch_size=1", "seq_len=16"])
    from llmzoo.models.zoo import get_config

    need, parts = preflight.estimate_memory(recipe, get_config("llama-7b"))
    # fp32 weights, gradients and two AdamW moments: 16 bytes for each of LLaMA-7B's 6.74B parameters
    assert parts["weights"] + parts["gradients"] + parts["AdamW"] == pytest.approx(16 * 6.74e9, rel=0.01)
    assert need > 16 * 6.74e9


# --- item 8: typed recipe, checked before any work --------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("model.tie_embeddings=maybe", "model.tie_embeddings must be a boolean (true/false), got 'maybe'"),
    ("model.n_layers=two", "model.n_layers must be an integer, got 'two'"),
    ("model.n_layer=2", "unknown model field 'n_layer'; did you mean 'model.n_layers'?"),
    ("model.n_heads=5", "d_model=256 is not divisible by n_heads=5"),
    ("objective=electr", "unknown objective 'electr'; did you mean: electra"),
    ("objective_options.mask_prob=0.2", "objective 'clm' has no option 'mask_prob'"),
    ("prepare.tokenizer.size=10", "unknown prepare.tokenizer key(s) ['size']"),
])
def test_bad_recipe_values_are_refused_before_tokenizer_training(tmp_path, capsys, override, message):
    _expect_error(capsys, ["--recipe", "shakespeare", f"run_dir={tmp_path / 'run'}", override], message)
    assert not (tmp_path / "run").exists()


def test_objective_flag_is_checked_too(tmp_path, capsys):
    _expect_error(capsys, ["--recipe", "shakespeare", f"run_dir={tmp_path / 'run'}", "--objective", "t5_spam"],
                  "did you mean: t5_span")


def test_typed_model_fields_reach_the_saved_config(tmp_path, data):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, tmp_path / "run"))
    assert main(["pretrain", "--recipe", str(recipe), "model.tie_embeddings=false", "model.norm_eps=1e-5",
                 "model.n_layers=1", *ONE_STEP]) == 0
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["tie_word_embeddings"] is False and saved["rms_norm_eps"] == 1e-5 and saved["num_hidden_layers"] == 1


# --- items 6 and 7: run_dir and seed ---------------------------------------------------------


def test_run_dir_that_cannot_be_created(tmp_path, data, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, tmp_path / "run"))
    _expect_error(capsys, ["--recipe", str(recipe), "run_dir=/proc/x"], "cannot create run_dir '/proc/x'")
    (tmp_path / "file").write_text("")
    _expect_error(capsys, ["--recipe", str(recipe), f"run_dir={tmp_path / 'file' / 'run'}"], "cannot create run_dir")


@pytest.mark.parametrize("seed", ["-1", str(2**32), "1.5"])
def test_seed_outside_what_numpy_takes(tmp_path, data, capsys, seed):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, tmp_path / "run"))
    _expect_error(capsys, ["--recipe", str(recipe), f"seed={seed}"], "seed")
    assert not (tmp_path / "run").exists()
