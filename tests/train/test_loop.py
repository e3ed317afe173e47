"""The training loop: it learns, its knobs change speed not results, and its outputs are there."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmzoo.errors import CheckpointError, LlmzooError
from llmzoo.train.loop import train
from llmzoo.train.metrics import read_metrics
from llmzoo.train.recipe import recipe_from_dict
from tests.train.helpers import VOCAB, make_token_data, tiny_recipe


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_token_data(tmp_path_factory.mktemp("loop") / "data")


def test_training_learns_the_data(data, tmp_path):
    result = train(recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=60, eval_every=20, lr=1e-2,
                                                batch_size=8)))
    records = read_metrics(tmp_path / "run")
    val = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in val] == [20, 40, 60]
    assert all(r["perplexity"] == pytest.approx(math.exp(r["loss"])) for r in val)
    # a model that learned nothing predicts ~uniformly: log(64) = 4.16 nats
    assert result.losses[1] == pytest.approx(math.log(VOCAB), abs=0.3)
    assert result.val_loss < math.log(VOCAB) - 1.0
    png = (tmp_path / "run" / "loss_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and result.curve == tmp_path / "run" / "loss_curve.png"
    train_records = [r for r in records if r["kind"] == "train"]
    assert all(r["tokens"] == r["step"] * 8 * 16 and r["tokens_per_s"] > 0 for r in train_records)
    # the exported model directory loads back through the public API with the trained weights
    import llmzoo

    model = llmzoo.load(result.model_dir)
    ids = torch.arange(1, 9)[None]
    from safetensors.torch import load_file

    ckpt = load_file(str(result.checkpoint / "model.safetensors"))
    assert torch.equal(model.embeddings.tokens.weight, ckpt["embeddings.tokens.weight"])
    assert model(ids).logits.shape == (1, 8, VOCAB)


def test_gradient_accumulation_gives_the_same_steps(data, tmp_path):
    """4 micro-batches of 2 rows = one batch of 8 rows (the loss is a mean over equal-sized parts)."""
    one = train(recipe_from_dict(tiny_recipe(data, tmp_path / "a", batch_size=8, max_steps=5, checkpoint_every=0)))
    accum = train(recipe_from_dict(tiny_recipe(data, tmp_path / "b", batch_size=8, grad_accum=4, max_steps=5,
                                               checkpoint_every=0)))
    np.testing.assert_allclose(list(accum.losses.values()), list(one.losses.values()), rtol=1e-5)


def test_activation_checkpointing_changes_memory_not_results(data, tmp_path):
    plain = train(recipe_from_dict(tiny_recipe(data, tmp_path / "a", max_steps=4, checkpoint_every=0)))
    ckpt = train(recipe_from_dict(tiny_recipe(data, tmp_path / "b", max_steps=4, checkpoint_every=0,
                                              activation_checkpointing=True)))
    assert ckpt.losses == plain.losses  # the recomputed forward is the same computation


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fused_loss_trains_like_the_logits_loss(data, tmp_path, precision):
    """The chunked head + cross-entropy (the default) against the plain logits -> F.cross_entropy:
    the same steps up to summation order (bf16: up to bf16 rounding of the gradients)."""
    runs = [train(recipe_from_dict(tiny_recipe(data, tmp_path / str(fused), max_steps=5, checkpoint_every=0,
                                               precision=precision, fused_loss=fused)))
            for fused in (True, False)]
    np.testing.assert_allclose(list(runs[0].losses.values()), list(runs[1].losses.values()),
                               rtol=1e-5 if precision == "fp32" else 2e-3)


def test_bf16_autocast_keeps_fp32_master_weights(data, tmp_path):
    from safetensors.torch import load_file

    result = train(recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=3, precision="bf16")))
    weights = load_file(str(result.checkpoint / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}
    assert result.losses[1] == pytest.approx(math.log(VOCAB), abs=0.3)  # bf16 matmuls, fp32 loss


def test_prefix_lm_objective_passes_prefix_lengths_to_the_model(data, tmp_path):
    """Objectives from the registry: batch keys the model accepts become model inputs. The logged
    step-1 loss is the loss with the prefix-LM mask, not the plain causal one."""
    import llmzoo
    from llmzoo.data import open_token_dataset
    from llmzoo.objectives import get_objective
    from llmzoo.train.batches import WindowSampler

    result = train(recipe_from_dict(tiny_recipe(data, tmp_path / "run", objective="prefix_lm", max_steps=2,
                                                objective_options={"prefix_length": 8})))
    objective = get_objective("prefix_lm", prefix_length=8)
    initial = llmzoo.build_model(llmzoo.load(result.model_dir).config)
    from safetensors.torch import load_file

    initial.load_state_dict(load_file(str(tmp_path / "run" / "checkpoints" / "step_0000000" / "model.safetensors")))
    rows = WindowSampler(open_token_dataset(data, "train"), 16, seed=0, window=16).rows(0, 4)
    batch = objective.make_batch(rows, torch.Generator())
    with torch.no_grad():
        with_prefix = objective.loss(initial(batch["input_ids"], prefix_lengths=batch["prefix_lengths"]), batch)[0]
        causal = objective.loss(initial(batch["input_ids"]), batch)[0]
    assert abs(float(with_prefix) - float(causal)) > 1e-4
    assert result.losses[1] == pytest.approx(float(with_prefix), rel=1e-5)


@pytest.mark.parametrize("objective, message", [
    ("mlm", r"objective 'mlm' trains encoder models, but model 'tiny' is arch='decoder'"),
    ("bart", r"objective 'bart' trains encoder_decoder models"),
    ("t5_span", r"objective 't5_span' needs special token\(s\) pad"),  # fits decoders; the data has no pad token
    ("klm", r"unknown objective 'klm'"),
])
def test_objective_that_does_not_fit_is_a_clear_error(data, tmp_path, objective, message):
    with pytest.raises(LlmzooError, match=message):
        train(recipe_from_dict(tiny_recipe(data, tmp_path / "run", objective=objective)))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_fresh_run_refuses_a_run_dir_with_checkpoints(data, tmp_path):
    train(recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=2)))
    with pytest.raises(LlmzooError, match=r"already has checkpoints.*--resume"):
        train(recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=2)))


def test_resume_with_a_different_model_names_the_fields(data, tmp_path):
    train(recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=2)))
    other = tiny_recipe(data, tmp_path / "run", max_steps=4)
    other["model"] = {**other["model"], "d_model": 48, "n_heads": 6}
    with pytest.raises(CheckpointError, match=r"different model config \(d_model 32 != 48; n_heads 4 != 6\)"):
        train(recipe_from_dict(other), resume=tmp_path / "run")


def test_resume_can_extend_a_finished_run(data, tmp_path):
    """max_steps raised on resume: the run continues from its last checkpoint, same as a longer run."""
    longer = train(recipe_from_dict(tiny_recipe(data, tmp_path / "a", max_steps=8, checkpoint_every=4)))
    train(recipe_from_dict(tiny_recipe(data, tmp_path / "b", max_steps=4, checkpoint_every=4,
                                       decay_steps=8)))
    extended = train(recipe_from_dict(tiny_recipe(data, tmp_path / "b", max_steps=8, checkpoint_every=4)),
                     resume=tmp_path / "b")
    assert extended.losses == longer.losses
