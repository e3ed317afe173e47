"""LoRA/rsLoRA/DoRA properties on llmzoo models (Hu et al. 2021; Liu et al. 2024): zero-init leaves
outputs unchanged, training moves only the adapter, merged = unmerged, disabled = base, KV-cached
decoding = full forward, and base checkpoints load into the wrapped model unchanged."""

from __future__ import annotations

import copy

import pytest
import torch

import llmzoo.peft as peft
from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model
from tests.parity.base import check_cached_decoding

DECODER = ModelConfig(vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=96, max_seq_len=64)
VARIANTS = {"lora": {}, "rslora": {"use_rslora": True}, "dora": {"use_dora": True}}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def model_and_ids(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(DECODER).eval()
    return model, torch.randint(0, DECODER.vocab_size, (2, 10))


def perturb_adapter(model: torch.nn.Module) -> None:
    """Non-zero B (and a magnitude off ||W||) so the adapter changes the outputs."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_unchanged_at_init(variant):
    model, ids = model_and_ids()
    base = logits(model, ids)
    peft.apply(model, "lora", target_modules=TARGETS, r=4, lora_alpha=8, **VARIANTS[variant])
    assert len(peft.lora_modules(model)) == 2 * len(TARGETS)
    torch.testing.assert_close(logits(model, ids), base, rtol=0, atol=0 if variant != "dora" else 1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_optimizer_step_moves_only_the_adapter(variant):
    model, ids = model_and_ids()
    peft.apply(model, "lora", r=4, lora_alpha=8, lora_dropout=0.1, **VARIANTS[variant])
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    adapter = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}
    trainable = peft.trainable_parameters(model)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(".lora_" in n for n in names)
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    model.train()
    for _ in range(2):  # the first step moves only B (A's gradient is zero while B = 0)
        loss = model(ids, targets=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = model.state_dict()
    for k, v in frozen.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    assert all(not torch.equal(after[k], v) for k, v in adapter.items() if k.endswith("lora_B.weight"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_merged_equals_unmerged_and_disabled_equals_base(variant):
    model, ids = model_and_ids()
    base = logits(model, ids)
    peft.apply(model, "lora", target_modules=TARGETS, r=4, lora_alpha=16, **VARIANTS[variant])
    perturb_adapter(model)
    adapted = logits(model, ids)
    assert not torch.allclose(adapted, base)
    with peft.disabled(model):
        torch.testing.assert_close(logits(model, ids), base, rtol=0, atol=0)
    torch.testing.assert_close(logits(model, ids), adapted, rtol=0, atol=0)  # re-enabled on exit
    peft.merge(model)
    assert not peft.lora_modules(model)
    assert all(type(m) is torch.nn.Linear for n, m in model.named_modules() if n.endswith("_proj"))
    torch.testing.assert_close(logits(model, ids), adapted)


@pytest.mark.parametrize("variant", VARIANTS)
def test_kv_cached_decoding_with_adapter(variant):
    model, _ = model_and_ids()
    peft.apply(model, "lora", target_modules=TARGETS, r=4, lora_alpha=8, **VARIANTS[variant])
    perturb_adapter(model)
    check_cached_decoding(model)


def test_base_state_dict_loads_into_wrapped_model():
    """The wrapper keeps `weight`/`bias` names: a base checkpoint loads strictly, adapter aside."""
    model, ids = model_and_ids()
    other, _ = model_and_ids(seed=1)
    state = copy.deepcopy(other.state_dict())
    peft.apply(model, "lora", target_modules=TARGETS, r=4, lora_alpha=8)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and missing and all(".lora_" in k for k in missing)
    torch.testing.assert_close(logits(model, ids), logits(other, ids))


def test_regex_and_suffix_targets():
    model, _ = model_and_ids()
    peft.apply(model, "lora", target_modules=r"layers\.1\.self_attn\.(q|v)_proj")
    assert sorted(peft.lora_modules(model)) == ["layers.1.self_attn.q_proj", "layers.1.self_attn.v_proj"]
    model, _ = model_and_ids()
    peft.apply(model, "lora", target_modules=["self_attn.o_proj", "down_proj"])
    assert len(peft.lora_modules(model)) == 4


def test_rslora_scaling():
    model, _ = model_and_ids()
    peft.apply(model, "lora", r=16, lora_alpha=8, use_rslora=True)
    assert all(m.scaling == 8 / 4 for m in peft.lora_modules(model).values())  # alpha / sqrt(r)


def test_dropout_follows_the_models_mode():
    """An adapter applied to an eval()'d model does not drop out (new modules start in train mode)."""
    model, ids = model_and_ids()
    peft.apply(model, "lora", r=4, lora_alpha=8, lora_dropout=0.5)
    perturb_adapter(model)
    torch.testing.assert_close(logits(model, ids), logits(model, ids), rtol=0, atol=0)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(ids).logits, model(ids).logits)


def test_adapter_round_trip_without_a_transformers_layout(tmp_path):
    """A family with no HF converter keeps llmzoo's module names in the peft-format files."""
    import llmzoo

    model, ids = model_and_ids()
    llmzoo.save(model, tmp_path / "base", format="llmzoo")
    peft.apply(model, "lora", target_modules=TARGETS, r=4, lora_alpha=8, use_dora=True)
    perturb_adapter(model)
    peft.save_adapter(model, tmp_path / "adapter")
    assert peft.describe_adapter(tmp_path / "adapter")["modules"] == 2 * len(TARGETS)
    again = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
    torch.testing.assert_close(logits(again, ids), logits(model, ids))
