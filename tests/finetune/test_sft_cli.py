"""`llmzoo finetune` with task=sft, as a user runs it: a JSONL file, a tiny random chat model, LoRA;
bad SFT input is one `error:` line and exit 2; the built-in recipe runs shortened on SmolLM2."""

from __future__ import annotations

import pytest
import torch

import llmzoo
from llmzoo.cli import main
from tests.finetune.sft_helpers import CHATS, tiny_chat_base, write_jsonl
from tests.train.helpers import train_losses, write_recipe

LORA = {"method": "lora", "target_modules": ["q_proj", "v_proj"], "r": 4, "lora_alpha": 8}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_chat_base(tmp_path_factory.mktemp("sft") / "tiny-chat")


def _recipe(tmp_path, base, train, **overrides):
    recipe = {"name": "tiny-sft", "task": "sft", "model": {"from": str(base)}, "data": {"train": str(train)},
              "peft": LORA, "run_dir": str(tmp_path / "run"), "seq_len": 96, "batch_size": 2, "max_steps": 6,
              "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 1, "eval_every": 3, "eval_batches": 1,
              "checkpoint_every": 6, "precision": "fp32", "threads": 1, "progress": False, "peak_flops": 1e11}
    recipe.update(overrides)
    return write_recipe(tmp_path / "sft.yaml", recipe)


@pytest.mark.asset
@pytest.mark.parametrize("packing", [True, False])
def test_sft_on_a_jsonl_file_trains_a_lora_adapter_that_loads(base, tmp_path, capsys, packing):
    train = write_jsonl(tmp_path / "train.jsonl", CHATS * 4)
    recipe = _recipe(tmp_path, base, train, data={"train": str(train), "packing": packing, "val_fraction": 0.25})
    assert main(["finetune", "--recipe", str(recipe)]) == 0
    assert "done: 6 steps" in capsys.readouterr().out
    losses = list(train_losses(tmp_path / "run").values())
    assert losses[-1] < losses[0]  # lr 1e-2 on 16 tiny conversations: the assistant tokens get likelier
    tuned = llmzoo.load(base, adapter=tmp_path / "run" / "adapter")
    ids = torch.tensor([[1, 5, 9, 200, 31]])
    assert not torch.equal(tuned(ids).logits, llmzoo.load(base)(ids).logits)


@pytest.mark.asset
@pytest.mark.parametrize("rows, message", [
    ([CHATS[0], {"messages": [{"role": "user", "content": "hi"}]}], "line 2: no assistant turn: nothing to train on"),
    ([CHATS[0], CHATS[1], '{"prompt": "unterminated'], "line 3: not valid JSON"),
])
def test_bad_sft_rows_are_one_line_naming_the_line(base, tmp_path, capsys, rows, message):
    train = write_jsonl(tmp_path / "bad.jsonl", rows)
    assert main(["finetune", "--recipe", str(_recipe(tmp_path, base, train))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and f"{train} {message}" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.asset
def test_chat_data_for_a_model_without_chat_template_is_one_line(tmp_path, capsys):
    bare = tiny_chat_base(tmp_path / "no-template", chat_template=False)
    train = write_jsonl(tmp_path / "train.jsonl", CHATS)
    assert main(["finetune", "--recipe", str(_recipe(tmp_path, bare, train))]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no chat template" in err and "set data.template to one of chatml, alpaca" in err
    # a named template for base models makes the same data trainable
    assert main(["finetune", "--recipe", str(_recipe(tmp_path, bare, train, max_steps=1, eval_every=1)),
                 "data.template=chatml"]) == 0


@pytest.mark.asset
def test_unknown_sft_setting_is_one_line(base, tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", CHATS)
    assert main(["finetune", "--recipe", str(_recipe(tmp_path, base, train)), "data.pack=true"]) == 2
    assert "unknown SFT data setting(s) pack" in capsys.readouterr().err


@pytest.mark.asset
@pytest.mark.slow
def test_builtin_recipe_runs_shortened_and_leaves_an_adapter_llmzoo_loads(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["finetune", "--recipe", "sft-lora-smollm2", "max_steps=2", "batch_size=1", "seq_len=128",
                 "eval_every=2", "eval_batches=1", "checkpoint_every=2", "threads=1", "progress=false",
                 f"run_dir={run}"]) == 0
    assert "done: 2 steps" in capsys.readouterr().out
    tuned = llmzoo.load("smollm2-135m-instruct", adapter=run / "adapter")
    base = llmzoo.load("smollm2-135m-instruct")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.equal(tuned(ids).logits, base(ids).logits)  # the trained adapter changes the model
