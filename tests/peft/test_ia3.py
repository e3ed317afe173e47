"""(IA)3 against peft 0.21 (IA3Config) on tiny random LLaMA, BERT and T5: peft's adapter loads into
llmzoo with equal fp32 outputs, llmzoo's loads into peft with equal outputs, one training step gives
the same loss and ia3_l gradients."""

from __future__ import annotations

import peft
import pytest
import torch
import torch.nn.functional as F

import llmzoo
import llmzoo.peft
from llmzoo.peft.names import ModuleNames
from tests.peft.peers import PEERS, base_checkpoint, forward, reload

# peft's default (IA)3 targets per family (peft.utils.constants), and the same layers by llmzoo's names
PEFT_TARGETS = {"llama": (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
                "bert": (["key", "value", "output.dense"], ["output.dense"]),
                "t5": (["k", "v", "wo"], ["wo"])}
ZOO_TARGETS = {"llama": (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
               "bert": (["k_proj", "v_proj", "o_proj", "down_proj"], ["o_proj", "down_proj"]),
               "t5": (["k_proj", "v_proj", "down_proj"], ["down_proj"])}


def peft_ia3(family: str, hf_model, directory) -> torch.nn.Module:
    """A peft (IA)3 adapter with random vectors (init_ia3_weights=False), saved to `directory`."""
    torch.manual_seed(5)
    targets, feedforward = PEFT_TARGETS[family]
    config = peft.IA3Config(target_modules=targets, feedforward_modules=feedforward, init_ia3_weights=False,
                            task_type=PEERS[family].task_type)
    model = peft.get_peft_model(hf_model, config).eval()
    model.save_pretrained(directory)
    return model


def ia3_modules(model) -> dict:
    return {n: m for n, m in llmzoo.peft.adapter_modules(model).items()}


@pytest.mark.parametrize("family", ["llama", "bert", "t5"])
def test_peft_ia3_adapter_loads_into_llmzoo(tmp_path, family):
    peer = PEERS[family]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    reference = peft_ia3(family, hf_model, tmp_path / "adapter")
    with torch.no_grad():
        expected = forward(reference, peer, inputs)
        model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
        assert len(ia3_modules(model)) == len(reference.targeted_module_names)
        torch.testing.assert_close(forward(model, peer, inputs), expected)


@pytest.mark.parametrize("family", ["llama", "bert", "t5"])
def test_llmzoo_ia3_adapter_loads_into_peft(tmp_path, family):
    peer = PEERS[family]
    _, inputs = base_checkpoint(peer, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    targets, feedforward = ZOO_TARGETS[family]
    llmzoo.peft.apply(model, "ia3", target_modules=targets, feedforward_modules=feedforward)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ia3_l"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
        expected = forward(model, peer, inputs)
    llmzoo.peft.save_adapter(model, tmp_path / "adapter")
    loaded = peft.PeftModel.from_pretrained(reload(peer, tmp_path / "base"), tmp_path / "adapter").eval()
    assert len(loaded.targeted_module_names) == len(ia3_modules(model))
    with torch.no_grad():
        torch.testing.assert_close(forward(loaded, peer, inputs), expected)


@pytest.mark.parametrize("family", ["llama", "bert", "t5"])
def test_ia3_training_step_matches_peft(tmp_path, family):
    peer = PEERS[family]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    reference = peft_ia3(family, hf_model, tmp_path / "adapter")
    model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
    ref_logits = forward(reference, peer, inputs)
    targets = torch.randint(0, ref_logits.shape[-1], ref_logits.shape[:2], generator=torch.Generator().manual_seed(2))
    losses = []
    for m in (reference, model):
        losses.append(F.cross_entropy(forward(m, peer, inputs).flatten(0, 1), targets.flatten()))
        losses[-1].backward()
    torch.testing.assert_close(losses[1], losses[0])
    names = ModuleNames(model.config)
    ref_params = dict(reference.named_parameters())
    for zoo_name, module in ia3_modules(model).items():
        theirs = f"base_model.model.{names.to_hf(zoo_name)}.ia3_l.default"
        torch.testing.assert_close(module.ia3_l.grad, ref_params[theirs].grad, msg=lambda m: f"{theirs}: {m}")
    assert {n for n, p in model.named_parameters() if p.grad is not None} == {
        n for n, p in model.named_parameters() if n.endswith("ia3_l")}


def test_ia3_info_and_merge_through_the_cli(tmp_path, capsys):
    import json

    import transformers

    from llmzoo.cli import main

    peer = PEERS["llama"]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    reference = peft_ia3("llama", hf_model, tmp_path / "adapter")
    assert main(["adapter", "info", str(tmp_path / "adapter"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "(IA)3" and info["feedforward_modules"] == ["down_proj"]
    assert info["trainable_parameters"] == reference.get_nb_trainable_parameters()[0]
    assert main(["adapter", "merge", str(tmp_path / "base"), str(tmp_path / "adapter"), str(tmp_path / "merged")]) == 0
    merged = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "merged", attn_implementation="eager").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, reference(**inputs).logits)
