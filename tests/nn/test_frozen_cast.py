"""Frozen weights cast once (llmzoo.nn.frozen_cast) change nothing but the speed: a LoRA step under
bf16 autocast gives bit-identical loss and adapter gradients with and without the cached casts
(fused projections and the chunked head included, native and emulated bf16 GEMMs), and a weight
changed in place (a merge) is cast again rather than served stale."""

from __future__ import annotations

import pytest
import torch

import llmzoo.peft as peft
from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model
from llmzoo.nn.bf16 import bf16_gemm_via_fp32
from llmzoo.nn.frozen_cast import cast_frozen, frozen_weight_casts
from llmzoo.train.model import set_fused_projections

CONFIG = ModelConfig(vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128, max_seq_len=64,
                     tie_embeddings=True)


def _lora_model():
    torch.manual_seed(0)
    model = build_model(CONFIG)
    peft.apply(model, "lora", target_modules=["q_proj", "v_proj"], r=4, lora_alpha=8)
    with torch.no_grad():  # LoRA's B starts at zero: move it so the adapter's gradients all flow
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    set_fused_projections(model, True)
    return model.train()


def _step(model, ids, cached: bool, emulate: bool):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with bf16_gemm_via_fp32(emulate), frozen_weight_casts(cached):
            loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("emulate", [False, True])
def test_cached_casts_give_bit_identical_loss_and_gradients(emulate):
    model = _lora_model()
    ids = torch.randint(0, CONFIG.vocab_size, (2, 17), generator=torch.Generator().manual_seed(1))
    loss, grads = _step(model, ids, cached=False, emulate=emulate)
    for _ in range(2):  # the second step serves every frozen weight from its cache
        cached_loss, cached_grads = _step(model, ids, cached=True, emulate=emulate)
        assert torch.equal(cached_loss, loss)
        assert grads.keys() == cached_grads.keys() and len(grads) == 2 * 2 * CONFIG.n_layers
        for name in grads:
            assert torch.equal(cached_grads[name], grads[name]), name
    served = [n for n, p in model.named_parameters() if hasattr(p, "_llmzoo_frozen_cast")]
    assert any(n.endswith("o_proj.weight") for n in served) and any("embed" in n for n in served)  # linear, head


def test_a_weight_changed_in_place_is_cast_again():
    model = _lora_model()
    ids = torch.randint(0, CONFIG.vocab_size, (1, 9), generator=torch.Generator().manual_seed(2))
    _step(model, ids, cached=True, emulate=False)  # fill the caches
    peft.merge(model)  # new base weights (in place or new tensors)
    with torch.no_grad():
        model.layers[0].mlp.down_proj.weight.mul_(2.0)  # an in-place change of a cached weight
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model(ids).logits
        with frozen_weight_casts():
            cached = model(ids).logits
    assert torch.equal(cached, plain)


def test_trainable_and_matching_weights_are_left_alone():
    trainable = torch.nn.Parameter(torch.randn(3, 3))
    assert cast_frozen(trainable, torch.bfloat16) is trainable
    frozen = torch.randn(3, 3)
    assert cast_frozen(frozen, torch.bfloat16) is cast_frozen(frozen, torch.bfloat16)  # cached
    assert cast_frozen(frozen) is frozen  # outside autocast: no dtype to cast to
    assert torch.equal(cast_frozen(frozen, torch.bfloat16), frozen.to(torch.bfloat16))
