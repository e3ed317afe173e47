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
from llmzoo.peft.block_expansion import expanded_layers
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
    assert expanded_layers(model) == [2, 5]  # a copy closes each group of two
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
    peft.merge(model)  # plain Blocks again
    assert expanded_layers(model) == [] and model.config.n_layers == 5
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


def test_llama_pro_method_saves_the_new_blocks_as_an_adapter(tmp_path):
    base = built(DECODER)
    llmzoo.save(base, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    peft.apply(model, "llama_pro", after=[0, 2])
    assert {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad} == {"1", "4"}
    with torch.no_grad():
        for i in expanded_layers(model):
            model.layers[i].mlp.down_proj.weight.normal_(0, 0.05)
    trained = logits(model)
    with peft.disabled(model):  # new blocks skipped: the base's computation
        torch.testing.assert_close(logits(model), logits(base), rtol=0, atol=1e-6)
    peft.save_adapter(model, tmp_path / "adapter")
    assert peft.read_adapter_config(tmp_path / "adapter")["llmzoo_method"] == "llama_pro"
    again = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
    torch.testing.assert_close(logits(again), trained)
    peft.merge(again)
    llmzoo.save(again, tmp_path / "merged")
    torch.testing.assert_close(logits(llmzoo.load(tmp_path / "merged")), trained)


def test_llama_pro_adapter_for_another_base_is_refused(tmp_path):
    model = built(DECODER)
    peft.apply(model, "llama_pro", every=2)
    peft.save_adapter(model, tmp_path / "adapter")
    other = built(DECODER.replace(n_layers=3))
    with pytest.raises(LlmzooError, match="expands a base of 4 blocks; this model has 3"):
        peft.load_adapter(other, tmp_path / "adapter")
