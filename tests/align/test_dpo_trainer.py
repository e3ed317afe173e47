"""`llmzoo align dpo|reward` end to end on a tiny random decoder with SmolLM2-Instruct's tokenizer
(chat template included), through llmzoo.cli.main: the run trains, writes a model llmzoo.load
reads, and its metrics show DPO working (the first step's loss is log 2, since the policy starts as
the reference; the loss falls; the implicit-reward margin, 0 at the start, rises above 0). Bad input
is one line, exit 2, no run directory."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

import llmzoo
from llmzoo.align.dpo_task import make_reference
from llmzoo.align.preference_data import both_sides, load_pairs, PairRows
from llmzoo.cli import main
from llmzoo.models.value_head import load_value_model
from tests.finetune.sft_helpers import smollm2_tokenizer, tiny_chat_base, tiny_model, write_jsonl

ROWS = [{"prompt": f"Is {w} a colour?", "chosen": "Yes, it is a colour.", "rejected": "I refuse to answer that."}
        for w in ("red", "blue", "green", "pink", "grey", "teal", "gold", "navy")]
ROWS[1] = {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is blue a colour?"}],
           "chosen": [{"role": "assistant", "content": "Yes."}], "rejected": [{"role": "assistant", "content": "No."}]}
SHORT = {"seq_len": 64, "batch_size": 2, "max_steps": 8, "lr": 0.01, "warmup_steps": 0, "precision": "fp32",
         "eval_every": 4, "eval_batches": 1, "checkpoint_every": 0, "progress": False, "peak_flops": 1e9, "threads": 1}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_chat_base(tmp_path_factory.mktemp("align") / "base")


def _recipe(tmp_path, base, task="dpo", data=None, **changes):
    data = {"train": str(write_jsonl(tmp_path / "pairs.jsonl", ROWS)), "val_fraction": 0.25, **(data or {})}
    recipe = {"name": f"tiny-{task}", "task": task, "model": {"from": str(base)}, "data": data,
              "peft": {"method": "lora", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
              "run_dir": str(tmp_path / "run"), **SHORT, **changes}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _records(run_dir, kind):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == kind]


def test_dpo_run_trains_and_leaves_a_model_llmzoo_loads(base, tmp_path):
    assert main(["align", "dpo", "--recipe", str(_recipe(tmp_path, base, data={"beta": 0.5}))]) == 0
    run = tmp_path / "run"
    train = _records(run, "train")
    assert train[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference at step 0
    assert train[-1]["loss"] < train[0]["loss"]
    [report] = _records(run, "held_out")
    assert report["train_reward_margin"] > 0 and report["train_reward_chosen"] > report["train_reward_rejected"]
    model = llmzoo.load(run / "model")
    assert model.config.vocab_size == smollm2_tokenizer().vocab_size
    assert (run / "adapter" / "adapter_config.json").is_file()


def test_reward_run_reports_pair_accuracy_and_saves_its_value_head(base, tmp_path):
    assert main(["align", "reward", "--recipe", str(_recipe(tmp_path, base, task="reward"))]) == 0
    run = tmp_path / "run"
    train = _records(run, "train")
    assert train[-1]["loss"] < train[0]["loss"]
    [report] = _records(run, "held_out")
    assert 0.0 <= report["reward_accuracy"] <= 1.0 and report["pairs"] == 2
    assert load_value_model(run / "model").score.weight.shape == (1, 32)


def test_adapters_disabled_reference_equals_a_separate_frozen_copy(base):
    from llmzoo import peft

    tokenizer = smollm2_tokenizer()
    policy = tiny_model(tokenizer.vocab_size, seed=3)
    copy_reference = make_reference("copy", policy)  # the base as it is, before adapters exist
    peft.apply(policy, "lora", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    with torch.no_grad():  # adapters that change the outputs, so that disabling them matters
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    adapters = make_reference("adapters", policy)
    rows = PairRows(load_pairs(write_jsonl(base.parent / "ref.jsonl", ROWS)), tokenizer.chat_template, tokenizer, 64,
                    tokenizer.eos_token_id)
    ids, labels, mask = both_sides(rows.rows([0, 1, 2]))
    from_copy = copy_reference.logps(policy, ids, labels, mask)
    from_adapters = adapters.logps(policy, ids, labels, mask)
    torch.testing.assert_close(from_adapters, from_copy)
    from llmzoo.align import sequence_logps

    with torch.no_grad():
        assert not torch.allclose(sequence_logps(policy, ids, labels, attention_mask=mask), from_copy)


BAD_ROWS = [
    ({"prompt": "Hi?", "rejected": "No."}, "missing 'chosen'"),
    ({"prompt": "Hi?", "chosen": "Yes."}, "missing 'rejected'"),
    ({"prompt": "Hi?", "chosen": "Yes.", "rejected": "Yes."}, "are the same answer"),
]


@pytest.mark.parametrize("row, message", BAD_ROWS)
def test_bad_preference_rows_are_one_line_and_write_nothing(base, tmp_path, capsys, row, message):
    path = _recipe(tmp_path, base)
    write_jsonl(tmp_path / "pairs.jsonl", ROWS[:3] + [row] + ROWS[3:])
    assert main(["align", "dpo", "--recipe", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "line 4" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [
    ("data.beta=0", "data.beta must be > 0"),
    ("data.beta=-1", "data.beta must be > 0"),
    ("data.loss_type=kto", "is not one of"),
    ("data.reference=adapters", "needs a PEFT adapter"),
])
def test_bad_dpo_settings_are_one_line_and_write_nothing(base, tmp_path, capsys, override, message):
    extra = ["peft=null"] if "reference" in override else []
    assert main(["align", "dpo", "--recipe", str(_recipe(tmp_path, base)), override, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_a_reference_with_another_vocabulary_is_one_line(base, tmp_path, capsys):
    other = llmzoo.save(tiny_model(128), tmp_path / "other")
    assert main(["align", "dpo", "--recipe", str(_recipe(tmp_path, base)), f"data.reference={other}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "one vocabulary" in err
    assert not (tmp_path / "run").exists()


def test_a_reward_run_outside_align_reward_has_no_value_head_and_says_so(base, tmp_path, capsys):
    assert main(["finetune", "--recipe", str(_recipe(tmp_path, base, task="reward"))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has none" in err and "llmzoo align reward" in err
    assert not (tmp_path / "run").exists()


def test_the_align_command_must_match_the_recipes_task(base, tmp_path, capsys):
    assert main(["align", "reward", "--recipe", str(_recipe(tmp_path, base))]) == 2
    assert "runs task=reward recipes" in capsys.readouterr().err


@pytest.mark.parametrize("recipe, command", [("dpo-lora-smollm2", "dpo"), ("reward-smollm2", "reward")])
def test_builtin_recipes_run_shortened_on_a_tiny_model(base, tmp_path, recipe, command):
    """The shipped recipes' data (builtin:sst2-pairs-*) and settings, two steps on the tiny base (the
    real SmolLM2 takes longer than a test should), its top-block LoRA targets swapped for q/v."""
    pytest.importorskip("pyarrow")
    argv = ["align", command, "--recipe", recipe, f"model.from={base}", "max_steps=2", "batch_size=2", "seq_len=96",
            "eval_every=2", "eval_batches=1", "checkpoint_every=0", "progress=false", "peak_flops=1e9", "threads=1",
            "precision=fp32", "peft.target_modules=[q_proj,v_proj]", f"run_dir={tmp_path / 'run'}"]
    if command == "dpo":
        argv.append("data.report_pairs=4")
    assert main(argv) == 0
    assert (tmp_path / "run" / "model" / "config.json").is_file()


def test_a_resumed_reward_run_repeats_the_uninterrupted_losses(base, tmp_path):
    """The loop's exact resume holds for the value head too (it is in the checkpoint's trainable tensors)."""
    whole = _recipe(tmp_path, base, task="reward", max_steps=6, checkpoint_every=2, decay_steps=6)
    assert main(["align", "reward", "--recipe", str(whole), f"run_dir={tmp_path / 'whole'}"]) == 0
    assert main(["align", "reward", "--recipe", str(whole), f"run_dir={tmp_path / 'cut'}", "max_steps=4"]) == 0
    assert main(["align", "reward", "--resume", str(tmp_path / "cut"), "max_steps=6"]) == 0
    losses = [{r["step"]: r["loss"] for r in _records(tmp_path / name, "train")} for name in ("whole", "cut")]
    assert losses[0] == losses[1] and len(losses[0]) == 6
