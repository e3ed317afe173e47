"""Context extension by fine-tuning with RoPE scaling set on the command line (Chen et al. 2023
position interpolation; Peng et al. 2023 YaRN): `llmzoo finetune task=clm model.from=BASE
model.rope_scaling={kind: ..., factor: 4} model.max_seq_len=4W seq_len=4W` writes the scaling into
the saved config, transformers reads it back, and both compute the same logits at 4W."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import llmzoo
from llmzoo.cli import main
from llmzoo.config import RopeScaling
from tests.train.helpers import make_token_data, tiny_recipe, write_recipe

W = 16


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctx")
    data = make_token_data(root / "data", train_tokens=8_000, val_tokens=1_000)
    recipe = tiny_recipe(data, root / "pre", max_steps=6, seq_len=W, model={**tiny_recipe(data, root)["model"], "max_seq_len": W})
    assert main(["pretrain", "--recipe", str(write_recipe(root / "pre.yaml", recipe))]) == 0
    return root / "pre" / "model", data


@pytest.mark.parametrize("scaling, expected, hf_type", [
    ("{kind: linear, factor: 4}", RopeScaling("linear", 4.0), "linear"),
    ("{kind: yarn, factor: 4, original_max_seq_len: 16}", RopeScaling("yarn", 4.0, 16), "yarn"),
])
def test_scaling_from_the_command_line_is_saved_and_transformers_agrees(base, tmp_path, scaling, expected, hf_type):
    model_dir, data = base
    assert llmzoo.load(model_dir).config.max_seq_len == W and llmzoo.load(model_dir).config.rope_scaling is None
    settings = tiny_recipe(data, tmp_path / "run", max_steps=2, seq_len=4 * W, batch_size=2, eval_every=2)
    settings.pop("model")
    settings.update(name="ctx", task="clm", model={"from": str(model_dir)}, data={"tokens": str(data)})
    recipe = write_recipe(tmp_path / "ctx.yaml", settings)
    assert main(["finetune", "--recipe", str(recipe), f"model.rope_scaling={scaling}", f"model.max_seq_len={4 * W}"]) == 0

    saved = tmp_path / "run" / "model"
    ours = llmzoo.load(saved).eval()
    assert ours.config.rope_scaling == expected and ours.config.max_seq_len == 4 * W
    hf_config = json.loads((saved / "config.json").read_text())
    assert hf_config["rope_parameters"]["rope_type"] == hf_type and hf_config["rope_parameters"]["factor"] == 4.0
    reference = transformers.AutoModelForCausalLM.from_pretrained(saved).eval()
    ids = torch.randint(1, 64, (2, 4 * W), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-5)


def test_an_unknown_scaling_key_is_one_line(base, tmp_path, capsys):
    model_dir, data = base
    settings = tiny_recipe(data, tmp_path / "run", max_steps=1, seq_len=4 * W)
    settings.pop("model")
    settings.update(name="ctx", task="clm", model={"from": str(model_dir)}, data={"tokens": str(data)})
    recipe = write_recipe(tmp_path / "ctx.yaml", settings)
    assert main(["finetune", "--recipe", str(recipe), "model.rope_scaling={type: linear, factor: 4}"]) == 2
    err = capsys.readouterr().err
    assert "rope_scaling has unknown key(s) ['type']; its keys are kind, factor" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model").exists()
