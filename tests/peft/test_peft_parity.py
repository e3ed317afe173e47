"""Against the real peer, peft: adapters written by peft load into llmzoo with equal fp32 outputs,
adapters written by llmzoo load into peft (PeftModel.from_pretrained) with equal outputs, and one
training step gives the same loss and the same adapter gradients."""

from __future__ import annotations

import peft
import pytest
import torch
import torch.nn.functional as F

import llmzoo
import llmzoo.peft
from llmzoo.peft.names import ModuleNames
from tests.peft.peers import PEERS, VARIANTS, base_checkpoint, forward, peft_adapter, reload


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", PEERS)
def test_peft_adapter_loads_into_llmzoo(tmp_path, family, variant):
    peer = PEERS[family]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    reference = peft_adapter(peer, hf_model, variant, tmp_path / "adapter")
    with torch.no_grad():
        expected = forward(reference, peer, inputs)
        model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
        assert len(llmzoo.peft.lora_modules(model)) == len(reference.targeted_module_names)
        torch.testing.assert_close(forward(model, peer, inputs), expected)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", PEERS)
def test_llmzoo_adapter_loads_into_peft(tmp_path, family, variant):
    peer = PEERS[family]
    _, inputs = base_checkpoint(peer, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    llmzoo.peft.apply(model, "lora", target_modules=peer.zoo_targets, r=4, lora_alpha=8, **VARIANTS[variant])
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        expected = forward(model, peer, inputs)
    llmzoo.peft.save_adapter(model, tmp_path / "adapter")
    loaded = peft.PeftModel.from_pretrained(reload(peer, tmp_path / "base"), tmp_path / "adapter").eval()
    assert len(loaded.targeted_module_names) == len(llmzoo.peft.lora_modules(model))
    with torch.no_grad():
        torch.testing.assert_close(forward(loaded, peer, inputs), expected)


@pytest.mark.parametrize("variant", ["lora", "dora"])
@pytest.mark.parametrize("family", ["llama", "bert", "t5"])
def test_training_step_matches_peft(tmp_path, family, variant):
    """Same batch, same loss, same lora_A / lora_B (/ magnitude) gradients."""
    peer = PEERS[family]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    reference = peft_adapter(peer, hf_model, variant, tmp_path / "adapter")
    model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
    ref_logits = forward(reference, peer, inputs)
    targets = torch.randint(0, ref_logits.shape[-1], ref_logits.shape[:2], generator=torch.Generator().manual_seed(2))
    losses = []
    for m in (reference, model):
        logits = forward(m, peer, inputs)
        losses.append(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
        losses[-1].backward()
    torch.testing.assert_close(losses[1], losses[0])
    names = ModuleNames(model.config)
    ref_params = dict(reference.named_parameters())
    for zoo_name, module in llmzoo.peft.lora_modules(model).items():
        hf = "base_model.model." + names.to_hf(zoo_name)
        pairs = [(module.lora_A.weight, f"{hf}.lora_A.default.weight"), (module.lora_B.weight, f"{hf}.lora_B.default.weight")]
        if module.lora_magnitude_vector is not None:
            pairs.append((module.lora_magnitude_vector, f"{hf}.lora_magnitude_vector.default.weight"))
        for ours, theirs in pairs:
            torch.testing.assert_close(ours.grad, ref_params[theirs].grad, msg=lambda m: f"{theirs}: {m}")
    assert {n for n, p in model.named_parameters() if p.grad is not None} == {
        n for n, p in model.named_parameters() if ".lora_" in n}


def test_rank_and_alpha_patterns_both_ways(tmp_path):
    """peft's per-module rank_pattern / alpha_pattern: read from peft, written back for peft."""
    peer = PEERS["llama"]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    torch.manual_seed(5)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False,
                             rank_pattern={"v_proj": 2, "layers.1.mlp.down_proj": 6}, alpha_pattern={"q_proj": 32},
                             use_rslora=True, task_type="CAUSAL_LM")
    reference = peft.get_peft_model(hf_model, config).eval()
    reference.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        expected = reference(**inputs).logits
        model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
        assert model.get_submodule("layers.1.mlp.down_proj").spec.r == 6
        torch.testing.assert_close(model(**inputs).logits, expected)
    llmzoo.peft.save_adapter(model, tmp_path / "again")
    loaded = peft.PeftModel.from_pretrained(reload(peer, tmp_path / "base"), tmp_path / "again").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, expected)
