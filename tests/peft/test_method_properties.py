"""Paper properties of every method beside LoRA (whose own are in test_lora_properties.py), on a tiny
llmzoo decoder: zero-init methods leave the outputs unchanged at init; an optimizer step moves only
the adapter; merged equals unmerged where the method is mergeable (else merge refuses in one line);
disabled equals the base; KV-cached decoding equals a full forward; the adapter round-trips through
save_adapter and llmzoo.load(base, adapter=)."""

from __future__ import annotations

import pytest
import torch

import llmzoo
import llmzoo.peft as peft
from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.models.build import build_model
from llmzoo.infer.seq2seq import generate_seq2seq
from tests.parity.base import check_cached_decoding
from tests.peft.peers import PEERS, base_checkpoint

DECODER = ModelConfig(vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128, max_seq_len=64)
METHODS = {"ia3": {}, "qlora": {"target_modules": ["q_proj", "v_proj", "down_proj"], "r": 4},
           "houlsby": {"r": 8}, "pfeiffer": {"r": 8, "non_linearity": "gelu"}}
MERGEABLE = {"ia3", "qlora"}
ADAPTER_PARAMS = ("ia3_l", ".lora_", ".adapter_")


def model_and_ids(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    return build_model(DECODER).eval(), torch.randint(0, DECODER.vocab_size, (2, 10))


def is_adapter(name: str) -> bool:
    return any(marker in name for marker in ADAPTER_PARAMS)


def perturb(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if is_adapter(name):
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("method", METHODS)
def test_outputs_unchanged_at_init(method):
    model, ids = model_and_ids()
    base = logits(model, ids)
    peft.apply(model, method, **METHODS[method])
    assert peft.adapter_modules(model)
    with peft.disabled(model):
        reference = logits(model, ids)  # QLoRA's base is the quantized one
    torch.testing.assert_close(logits(model, ids), reference, rtol=0, atol=0)
    if method != "qlora":
        torch.testing.assert_close(reference, base, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_optimizer_step_moves_only_the_adapter(method):
    model, ids = model_and_ids()
    peft.apply(model, method, **METHODS[method])
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(is_adapter(n) for n in names)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(peft.trainable_parameters(model), lr=1e-2)
    model.train()
    for _ in range(2):  # zero-init up-projections: the first step moves only them
        model(ids, targets=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(after[k], before[k])}
    assert moved and all(is_adapter(k) for k in moved)
    assert moved == {k for k in before if is_adapter(k)}


@pytest.mark.parametrize("method", METHODS)
def test_merged_equals_unmerged_and_disabled_equals_base(method):
    model, ids = model_and_ids()
    peft.apply(model, method, **METHODS[method])
    with peft.disabled(model):
        base = logits(model, ids)
    perturb(model)
    adapted = logits(model, ids)
    assert not torch.allclose(adapted, base)
    with peft.disabled(model):
        torch.testing.assert_close(logits(model, ids), base, rtol=0, atol=0)
    torch.testing.assert_close(logits(model, ids), adapted, rtol=0, atol=0)
    if method not in MERGEABLE:
        with pytest.raises(LlmzooError, match="cannot be merged"):
            peft.merge(model)
        return
    peft.merge(model)
    assert not peft.adapter_modules(model)
    assert all(type(m) is torch.nn.Linear for n, m in model.named_modules() if n.endswith("_proj"))
    torch.testing.assert_close(logits(model, ids), adapted)


@pytest.mark.parametrize("method", METHODS)
def test_kv_cached_decoding_with_adapter(method):
    model, _ = model_and_ids()
    peft.apply(model, method, **METHODS[method])
    perturb(model)
    check_cached_decoding(model)


@pytest.mark.parametrize("method", METHODS)
def test_seq2seq_cached_generation_with_adapter(tmp_path, method):
    """T5: cached greedy decoding (cross-attention keys/values computed once, through the adapter)
    equals uncached."""
    _, inputs = base_checkpoint(PEERS["t5"], tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    peft.apply(model, method, **METHODS[method])
    perturb(model)
    args = (model, inputs["input_ids"], inputs["attention_mask"])
    with torch.no_grad():
        cached = generate_seq2seq(*args, max_new_tokens=6, use_cache=True)
        full = generate_seq2seq(*args, max_new_tokens=6, use_cache=False)
    torch.testing.assert_close(cached, full, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["ia3", "houlsby", "pfeiffer"])
def test_adapter_round_trip(tmp_path, method):
    model, ids = model_and_ids()
    llmzoo.save(model, tmp_path / "base", format="llmzoo")
    peft.apply(model, method, **METHODS[method])
    perturb(model)
    peft.save_adapter(model, tmp_path / "adapter")
    info = peft.describe_adapter(tmp_path / "adapter")
    assert info["trainable_parameters"] == sum(p.numel() for p in peft.trainable_parameters(model))
    assert info["modules"] == len(peft.adapter_modules(model))
    again = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
    torch.testing.assert_close(logits(again, ids), logits(model, ids), rtol=0, atol=0)
