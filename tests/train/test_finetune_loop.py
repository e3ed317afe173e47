"""Fine-tuning through the one training loop (`llmzoo finetune`): a tiny random decoder trained on
a tiny task registered by tests/train/finetune_helpers.py, fully and with LoRA."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

import llmzoo
from llmzoo.cli import main
from llmzoo.train import checkpoint as ckpt_io
from llmzoo.train.loop import Trainer
from llmzoo.train.recipe import recipe_from_dict
from tests.train.finetune_helpers import finetune_recipe, tiny_base
from tests.train.helpers import VOCAB, train_losses, write_recipe

LORA = {"method": "lora", "target_modules": ["q_proj", "v_proj"], "r": 4, "lora_alpha": 8}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("finetune") / "base")


def _ids():
    return torch.randint(1, VOCAB, (2, 12), generator=torch.Generator().manual_seed(3))


def test_full_finetune_through_the_cli_trains_and_saves_a_loadable_model(base, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "ft.yaml", finetune_recipe(base, tmp_path / "run", max_steps=12, lr=1e-2))
    assert main(["finetune", "--recipe", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "done: 12 steps" in out and "model: " in out
    losses = train_losses(tmp_path / "run")
    assert sorted(losses) == list(range(1, 13))
    assert sum(list(losses.values())[-3:]) < sum(list(losses.values())[:3])  # it learned something
    tuned, original = llmzoo.load(tmp_path / "run" / "model"), llmzoo.load(base)
    assert not torch.equal(tuned(_ids()).logits, original(_ids()).logits)
    assert (tmp_path / "run" / "loss_curve.png").is_file()
    assert not (tmp_path / "run" / "adapter").exists()


def test_lora_finetune_resumes_bit_exactly_and_checkpoints_only_the_adapter(base, tmp_path):
    recipe = finetune_recipe(base, tmp_path / "whole", peft=LORA, max_steps=8, checkpoint_every=4)
    write_recipe(tmp_path / "lora.yaml", recipe)
    assert main(["finetune", "--recipe", str(tmp_path / "lora.yaml")]) == 0
    reference = train_losses(tmp_path / "whole")
    assert sorted(reference) == list(range(1, 9))

    # What a run killed after its step-4 checkpoint leaves behind: the checkpoints up to step 4.
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "whole", killed)
    for later in [c for c in ckpt_io.complete_checkpoints(killed) if ckpt_io.checkpoint_step(c) > 4]:
        shutil.rmtree(later)
    shutil.rmtree(killed / "model")
    shutil.rmtree(killed / "adapter")
    assert main(["finetune", "--resume", str(killed)]) == 0
    resumed = train_losses(killed)
    assert [resumed[s] for s in range(5, 9)] == [reference[s] for s in range(5, 9)]  # bit for bit

    # A PEFT checkpoint holds the adapter's tensors only, and AdamW state for exactly those.
    step4 = ckpt_io.complete_checkpoints(killed)[0].parent / "step_0000004"
    model_keys = set(load_file(step4 / "model.safetensors"))
    assert model_keys and all("lora_" in k for k in model_keys)
    optimizer_params = {k.split("/")[1] for k in load_file(step4 / "optimizer.safetensors")}
    assert optimizer_params == model_keys

    # The adapter (peft's format) on the base computes what the merged model does.
    with_adapter = llmzoo.load(base, adapter=killed / "adapter")
    merged = llmzoo.load(killed / "model")
    torch.testing.assert_close(with_adapter(_ids()).logits, merged(_ids()).logits, rtol=1e-5, atol=1e-5)
    assert not torch.equal(merged(_ids()).logits, llmzoo.load(base)(_ids()).logits)


def test_optimizer_holds_exactly_the_trainable_parameters(base, tmp_path):
    from llmzoo import peft

    trainer = Trainer(recipe_from_dict(finetune_recipe(base, tmp_path / "run", peft=LORA)))
    model = trainer.engine.base
    in_optimizer = [p for group in trainer.engine.optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in in_optimizer} == {id(p) for p in peft.trainable_parameters(model)}
    assert len(in_optimizer) == len(peft.trainable_parameters(model)) < len(list(model.parameters()))


def test_recipe_that_trains_nothing_is_refused_before_any_checkpoint(base, tmp_path, capsys):
    run_dir = tmp_path / "run"
    recipe = write_recipe(tmp_path / "frozen.yaml", finetune_recipe(base, run_dir, data={"freeze_all": True}))
    assert main(["finetune", "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "trains nothing" in err and len(err.splitlines()) == 1
    assert ckpt_io.complete_checkpoints(run_dir) == [] and not run_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_device_cuda_without_cuda_is_one_clear_line(base, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "ft.yaml", finetune_recipe(base, tmp_path / "run"))
    assert main(["finetune", "--recipe", str(recipe), "device=cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device=cuda" in err and "no CUDA device" in err
    assert not (tmp_path / "run").exists()


def test_pretrain_and_finetune_refuse_each_others_recipes(base, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "ft.yaml", finetune_recipe(base, tmp_path / "run"))
    assert main(["pretrain", "--recipe", str(recipe)]) == 2
    assert "llmzoo finetune" in capsys.readouterr().err
    assert main(["finetune", "--recipe", "shakespeare"]) == 2
    assert "llmzoo pretrain" in capsys.readouterr().err


def test_model_fields_change_the_base_config_where_the_weights_stay_valid(base, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "ft.yaml", finetune_recipe(base, tmp_path / "run", max_steps=2))
    assert main(["finetune", "--recipe", str(recipe), "model.rope_base=40000", "checkpoint_every=0"]) == 0
    assert llmzoo.load(tmp_path / "run" / "model").config.rope_base == 40000  # written into the saved config
    capsys.readouterr()
    assert main(["finetune", "--recipe", str(recipe), "model.n_layers=3", f"run_dir={tmp_path / 'other'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "change its parameters" in err


def test_grad_accum_keeps_the_token_mean_when_rows_have_different_target_counts(base, tmp_path):
    """One step's loss is the mean over all its targets, however the batch is cut into micro-batches."""
    losses = {}
    for accum in (1, 2, 4):
        recipe = finetune_recipe(base, tmp_path / f"accum{accum}", data={"masked": True}, grad_accum=accum,
                                 max_steps=4, checkpoint_every=0, eval_every=0)
        losses[accum] = Trainer(recipe_from_dict(recipe)).run().losses
    for accum in (2, 4):
        for step in range(1, 5):
            assert losses[accum][step] == pytest.approx(losses[1][step], rel=1e-5), (accum, step)
