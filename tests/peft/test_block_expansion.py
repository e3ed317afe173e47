"""LLaMA-Pro block expansion (Wu et al. 2024): the expanded model computes what the base did, only the
new blocks train, and it saves and loads (transformers included) with the new layer count."""

from __future__ import annotations

import pytest
import torch
import transformers

import llmzoo
import llmzoo.peft as peft
from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.models.build import build_model
from tests.parity.base import check_cached_decoding

DECODER = ModelConfig(vocab_size=97, d_model=64, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=96, max_seq_len=64)
VARIANTS = {
    "llama": DECODER,
    "moe": DECODER.replace(n_experts=4, n_experts_per_token=2),
    "local-global": DECODER.replace(sliding_window=4, layer_pattern=("local", "global")),
    "gpt2-like": DECODER.replace(norm="layernorm", activation="gelu", mlp_gated=False, qkv_bias=True,
                                 attn_out_bias=True, mlp_bias=True, position="learned"),
}


def built(config: ModelConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(config).eval()


def ids() -> torch.Tensor:
    return torch.randint(0, DECODER.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(ids()).logits


@pytest.mark.parametrize("variant", VARIANTS)
def test_outputs_unchanged_after_expansion(variant):
    model = built(VARIANTS[variant])
    before = logits(model)
    peft.expand_blocks(model, every=2)
    assert model.config.n_layers == 6 and len(model.layers) == 6
    assert model.expanded_layers == [2, 5]  # a copy closes each group of two
    torch.testing.assert_close(logits(model), before, rtol=0, atol=1e-6)
    if variant == "local-global":  # each copy attends like its source
        assert model.config.layer_pattern == ("local", "global", "global", "local", "global", "global")
    check_cached_decoding(model)  # layers renumbered: the KV cache addresses the right slots


def test_only_the_new_blocks_train_and_then_change_the_output():
    model = built(DECODER)
    before = logits(model)
    peft.expand_blocks(model, after=[1])
    base = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("layers.2.")}
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("layers.2.") for n in names)
    optimizer = torch.optim.AdamW(peft.trainable_parameters(model), lr=1e-2)
    model.train()
    for _ in range(3):
        batch = ids()
        loss = torch.nn.functional.cross_entropy(model(batch[:, :-1]).logits.flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base.items())
    assert not torch.equal(after["layers.2.self_attn.o_proj.weight"], torch.zeros_like(after["layers.2.self_attn.o_proj.weight"]))
    assert not torch.allclose(logits(model), before)


def test_expanded_model_saves_and_loads_in_llmzoo_and_transformers(tmp_path):
    model = built(DECODER)
    peft.expand_blocks(model, every=4)
    with torch.no_grad():  # trained-looking new block, so the round trip is not of zeros
        model.layers[4].self_attn.o_proj.weight.normal_(0, 0.05)
        model.layers[4].mlp.down_proj.weight.normal_(0, 0.05)
    expected = logits(model)
    llmzoo.save(model, tmp_path / "expanded")
    reloaded = llmzoo.load(tmp_path / "expanded")
    assert reloaded.config.n_layers == 5
    torch.testing.assert_close(logits(reloaded), expected)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "expanded").eval()
    assert hf.config.num_hidden_layers == 5
    with torch.no_grad():
        torch.testing.assert_close(hf(ids()).logits, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("config, options, message", [
    (DECODER.replace(norm_placement="post"), {"every": 1}, "pre-norm"),
    (DECODER.replace(share_layers=True), {"every": 1}, "share weights"),
    (DECODER, {"every": 0}, "every= must be an integer in 1..4"),
    (DECODER, {"after": [4]}, "after= must list block indices in 0..3"),
])
def test_bad_expansions_are_refused(config, options, message):
    with pytest.raises(LlmzooError, match=message):
        peft.expand_blocks(built(config), **options)
