"""Continued pretraining (`llmzoo finetune task=clm model.from=SOURCE data.tokens=DIR`): a model
`llmzoo pretrain` left, in its HF layout or llmzoo's own, trains on new token shards starting from
its weights (not a fresh init), with a fresh optimizer, or resumed bit for bit with --resume; the
run's val loss is the held-out perplexity at the window (checked against window_perplexity)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import llmzoo
from llmzoo.cli import main
from llmzoo.data import open_token_dataset
from llmzoo.finetune.continued_pretraining import TokenWindows, window_perplexity
from llmzoo.train import checkpoint as ckpt_io
from tests.train.helpers import make_token_data, tiny_recipe, train_losses, write_recipe


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpt")
    data = make_token_data(root / "data_a")
    recipe = write_recipe(root / "pre.yaml", tiny_recipe(data, root / "pre", max_steps=12))
    assert main(["pretrain", "--recipe", str(recipe)]) == 0
    hf_dir = root / "pre" / "model"
    native = llmzoo.save(llmzoo.load(hf_dir), root / "native", format="llmzoo")
    new_data = root / "data_b"
    make_token_data(new_data, train_tokens=6_000, val_tokens=1_100)
    return {"hf": hf_dir, "llmzoo": native, "data": new_data}


def continued(source, data, run_dir, **overrides) -> dict:
    recipe = tiny_recipe(data, run_dir, max_steps=6, checkpoint_every=3, eval_every=3, eval_batches=100)
    recipe.pop("model")
    recipe.update(name="cpt", task="clm", model={"from": str(source)}, data={"tokens": str(data)}, **overrides)
    return recipe


@pytest.mark.parametrize("layout", ["hf", "llmzoo"])
def test_continues_from_the_checkpoint_weights_and_reports_held_out_perplexity(pretrained, tmp_path, layout):
    source = pretrained[layout]
    # A vanishing learning rate: the exported model must be the source's weights, not a fresh init.
    recipe = continued(source, pretrained["data"], tmp_path / "run", lr=1e-12, min_lr=0.0, max_steps=3)
    assert main(["finetune", "--recipe", str(write_recipe(tmp_path / "cpt.yaml", recipe))]) == 0
    before, after = llmzoo.load(source), llmzoo.load(tmp_path / "run" / "model")
    ids = torch.randint(1, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(after(ids).logits, before(ids).logits, rtol=1e-6, atol=1e-6)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"][-1]
    windows = TokenWindows(open_token_dataset(pretrained["data"], "val"), seq_len=16)
    assert val["perplexity"] == pytest.approx(window_perplexity(before, windows), rel=1e-4)
    assert val["loss"] == pytest.approx(math.log(val["perplexity"]), rel=1e-6)


def test_fresh_optimizer_learns_and_resume_repeats_the_losses(pretrained, tmp_path):
    recipe = continued(pretrained["hf"], pretrained["data"], tmp_path / "whole", lr=3e-3)
    assert main(["finetune", "--recipe", str(write_recipe(tmp_path / "cpt.yaml", recipe))]) == 0
    reference = train_losses(tmp_path / "whole")
    assert sorted(reference) == list(range(1, 7))
    # a fresh optimizer: the first checkpoint's AdamW step counts this run's 3 steps, not the pretraining's 12
    first = ckpt_io.complete_checkpoints(tmp_path / "whole")[0].parent / "step_0000003"
    adam_steps = {k: v for k, v in load_file(first / "optimizer.safetensors").items() if k.endswith("/step")}
    assert adam_steps and all(v.item() == 3 for v in adam_steps.values())
    assert sum(list(reference.values())[-2:]) < sum(list(reference.values())[:2])  # it learns the new shards

    killed = tmp_path / "killed"  # what a run killed after its step-3 checkpoint leaves
    shutil.copytree(tmp_path / "whole", killed)
    for later in [c for c in ckpt_io.complete_checkpoints(killed) if ckpt_io.checkpoint_step(c) > 3]:
        shutil.rmtree(later)
    shutil.rmtree(killed / "model")
    assert main(["finetune", "--resume", str(killed)]) == 0
    resumed = train_losses(killed)
    assert [resumed[s] for s in range(4, 7)] == [reference[s] for s in range(4, 7)]


def test_data_of_a_larger_vocabulary_is_refused(pretrained, tmp_path, capsys):
    from llmzoo.data.shards import SplitWriter, choose_dtype, write_manifest

    big = tmp_path / "big"
    big.mkdir()
    writer = SplitWriter(big, "train", choose_dtype(1000), shard_tokens=1000)
    writer.add(np.arange(500, dtype=np.int64))
    write_manifest(big, dtype=choose_dtype(1000), vocab_size=1000, eos_id=0, tokenizer="x", splits={"train": writer.close()})
    recipe = continued(pretrained["hf"], big, tmp_path / "run")
    assert main(["finetune", "--recipe", str(write_recipe(tmp_path / "cpt.yaml", recipe))]) == 2
    assert "holds ids up to 999 but" in capsys.readouterr().err


def test_llama_pro_block_expansion_as_the_recipe_peft_method(pretrained, tmp_path):
    """Wu et al. 2024's recipe: expand, then continue pretraining only the new blocks on the new domain."""
    recipe = continued(pretrained["hf"], pretrained["data"], tmp_path / "run", lr=3e-3,
                       peft={"method": "llama_pro", "every": 2})
    assert main(["finetune", "--recipe", str(write_recipe(tmp_path / "pro.yaml", recipe))]) == 0
    base, tuned = llmzoo.load(pretrained["hf"]), llmzoo.load(tmp_path / "run" / "model")
    assert base.config.n_layers == 2 and tuned.config.n_layers == 3  # one copy after the 2-block group
    old, new = base.state_dict(), tuned.state_dict()
    for key, value in old.items():  # the old blocks and embeddings are frozen: unchanged
        assert torch.equal(new[key], value), key  # every=2 adds its copy after layers.1: old names keep
    assert new["layers.2.self_attn.o_proj.weight"].abs().sum() > 0  # the zero-init copy trained
    adapter = llmzoo.load(pretrained["hf"], adapter=tmp_path / "run" / "adapter")
    ids = torch.randint(1, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(adapter(ids).logits, tuned(ids).logits)
