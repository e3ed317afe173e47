"""Every registered PEFT method through `llmzoo finetune ... peft.method=NAME`, as a user reaches it:
the run trains only the adapter, leaves an adapter in peft's format that `llmzoo.load(base,
adapter=)` reads, and `llmzoo eval --adapter` scores with it. Mergeable methods also leave a merged
model whose outputs equal the base with the adapter applied; the others leave none (their adapter
adds computation) and are used through --adapter."""

from __future__ import annotations

import json

import pytest
import torch

import llmzoo
from llmzoo.cli import main
from llmzoo.peft.load import load_adapter
from llmzoo.peft.methods import methods
from llmzoo.peft.nf4 import dequantize_linears, quantize_linears
from tests.finetune.sft_helpers import CHATS, tiny_chat_base, write_jsonl
from tests.train.helpers import write_recipe

# Each method's own settings (the tiny base has 2 blocks of width 32, 4 heads).
OPTIONS = {
    "lora": {"target_modules": ["q_proj", "v_proj"], "r": 4, "lora_alpha": 8},
    "qlora": {"target_modules": ["q_proj", "v_proj", "down_proj"], "r": 4, "lora_alpha": 8},
    "ia3": {},
    "prompt_tuning": {"num_virtual_tokens": 4},
    "p_tuning": {"num_virtual_tokens": 4, "encoder_hidden_size": 32},
    "prefix_tuning": {"num_virtual_tokens": 4},
    "adaption_prompt": {"adapter_len": 4, "adapter_layers": 2},
    "houlsby": {"r": 8},
    "pfeiffer": {"r": 8},
    "llama_pro": {"every": 2},
}


def test_every_registered_method_is_covered_here():
    assert {m.name for m in methods()} == set(OPTIONS)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_chat_base(tmp_path_factory.mktemp("peft-cli") / "tiny-chat")


def _settings(method: str) -> list[str]:
    return [f"peft.method={method}"] + [f"peft.{k}={json.dumps(v)}" for k, v in OPTIONS[method].items()]


def _nf4_rounded(model: torch.nn.Module) -> torch.nn.Module:
    """The base as QLoRA trains on it: its linear layers through NF4 and back (the adapter is plain
    LoRA, so it alone cannot say the base was quantized)."""
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")]
    quantize_linears(model, names)
    dequantize_linears(model)
    return model


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.asset
@pytest.mark.parametrize("method", OPTIONS)
def test_finetune_with_each_peft_method_leaves_an_adapter_that_loads_and_evaluates(base, tmp_path, capsys, method):
    train = write_jsonl(tmp_path / "train.jsonl", CHATS * 4)
    run = tmp_path / "run"
    recipe = write_recipe(tmp_path / "sft.yaml", {
        "name": "tiny-peft", "task": "sft", "model": {"from": str(base)},
        "data": {"train": str(train), "val_fraction": 0.25}, "run_dir": str(run), "seq_len": 96,
        "batch_size": 2, "max_steps": 3, "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 1, "eval_every": 3,
        "eval_batches": 1, "checkpoint_every": 3, "precision": "fp32", "threads": 1, "progress": False,
        "peak_flops": 1e11})
    assert main(["finetune", "--recipe", str(recipe), *_settings(method)]) == 0
    assert "done: 3 steps" in capsys.readouterr().out

    ids = torch.tensor([[1, 5, 9, 200, 31, 7]])
    tuned = llmzoo.load(base, adapter=run / "adapter").eval()
    assert not torch.allclose(_logits(tuned, ids), _logits(llmzoo.load(base).eval(), ids))  # training moved it
    mergeable = next(m for m in methods() if m.name == method).merge is not None
    assert (run / "model").exists() == mergeable
    if mergeable:  # the merged model is the base it trained on with the adapter applied
        trained_on = _nf4_rounded(llmzoo.load(base)) if method == "qlora" else llmzoo.load(base)
        expected = load_adapter(trained_on, run / "adapter").eval()
        torch.testing.assert_close(_logits(llmzoo.load(run / "model").eval(), ids), _logits(expected, ids),
                                   rtol=1e-4, atol=1e-4)

    text = tmp_path / "text.txt"
    text.write_text("Blue. Paris and Rome are capitals. Hi!\n" * 4)
    scores = {}
    for name, extra in (("base", []), ("tuned", ["--adapter", str(run / "adapter")])):
        out = tmp_path / f"{name}.json"
        assert main(["eval", str(base), "--tasks", f"ppl:{text}", "--json", str(out), *extra]) == 0
        scores[name] = json.loads(out.read_text())["results"][f"ppl:{text}"]
    assert scores["tuned"] != scores["base"]  # --adapter is applied, not ignored


@pytest.mark.asset
def test_packing_asked_for_with_prompt_tuning_is_one_line(base, tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", CHATS * 4)
    recipe = write_recipe(tmp_path / "sft.yaml", {
        "name": "tiny-peft", "task": "sft", "model": {"from": str(base)}, "data": {"train": str(train)},
        "run_dir": str(tmp_path / "run"), "seq_len": 96, "batch_size": 2, "max_steps": 1, "precision": "fp32",
        "threads": 1, "progress": False})
    assert main(["finetune", "--recipe", str(recipe), "data.packing=true", *_settings("prompt_tuning")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "set data.packing=false" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
