"""The per-layer spec (ModelConfig.mixers / ffns): patterns build the layers they say, the default
is today's transformer, hybrids decode with a cache, and specs that make no sense name the layer."""

from __future__ import annotations

import pytest
import torch

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError
from llmzoo.flops import count_params
from llmzoo.models.build import build_model, count_parameters
from tests.parity.base import check_cached_decoding
from tests.parity.decoding import check_chunked_cached_decoding

TINY = dict(vocab_size=61, d_model=16, n_layers=8, n_heads=2, n_kv_heads=1, d_ff=24, max_seq_len=64)


def test_absent_spec_is_the_uniform_transformer():
    plain = build_model(ModelConfig(**TINY))
    spelt = build_model(ModelConfig(**TINY, mixers=("attention",), ffns=("dense",)))
    assert plain.state_dict().keys() == spelt.state_dict().keys()
    moe = ModelConfig(**TINY, n_experts=4)
    assert {moe.ffn_kind(i) for i in range(8)} == {"moe"}


def test_patterns_cycle_over_layers():
    c = ModelConfig(**TINY, mixers=("mamba",) * 3 + ("attention",), ffns=("dense", "moe"), n_experts=4,
                    position="none")
    assert [c.mixer_kind(i) for i in range(8)] == ["mamba"] * 3 + ["attention"] + ["mamba"] * 3 + ["attention"]
    assert [c.ffn_kind(i) for i in range(8)] == ["dense", "moe"] * 4  # MoE every other layer (GLaM)
    model = build_model(c)
    assert [hasattr(b, "self_attn") for b in model.layers] == [c.mixer_kind(i) == "attention" for i in range(8)]
    assert [type(b.mlp).__name__ for b in model.layers] == ["MLP", "MoE"] * 4
    assert count_params(c) == count_parameters(build_model(c, device="meta"))
    assert count_params(c, active=True) < count_params(c)


def hybrid(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, "n_layers": 4, "position": "rope", "mixers": ("mamba", "attention"),
                          "ffns": ("moe", "dense", "none", "dense"), "n_experts": 3, "ssm_state_size": 4, **kw})


def test_hybrid_cached_decoding_equals_full_forward():
    torch.manual_seed(0)
    model = build_model(hybrid()).eval()
    with torch.no_grad():
        out = model(torch.randint(0, 61, (2, 7)))
    assert out.aux_loss is not None  # the MoE layer's load-balancing loss
    check_cached_decoding(model)
    check_chunked_cached_decoding(model)


def test_hybrid_generate_ids_matches_uncached_greedy():
    torch.manual_seed(0)
    model = build_model(hybrid()).eval()
    prompt = [3, 14, 15, 9, 2]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(6):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert llmzoo.generate_ids(model, [prompt], max_new_tokens=6)[0].token_ids == ids[len(prompt):]


def test_spec_survives_json_and_llmzoo_save(tmp_path):
    config = hybrid()
    assert ModelConfig.from_json(config.to_json()) == config
    model = build_model(config).eval()
    llmzoo.save(model, tmp_path / "m", format="llmzoo")
    back = llmzoo.load(tmp_path / "m")
    ids = torch.randint(0, 61, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, model(ids).logits)


@pytest.mark.parametrize("changes, message", [
    (dict(mixers=("attention", "retention")), r"layer 1: mixers entry 'retention' is not one of"),
    (dict(ffns=("dense", "moe"), n_experts=4, n_experts_per_token=5), r"layer 1: MoE top-k n_experts_per_token=5"),
    (dict(ffns=("dense", "moe")), r"layer 1: ffns says 'moe' but n_experts=0"),
    (dict(mixers=("none",), ffns=("dense", "none")), r"layer 1: mixers and ffns are both 'none'"),
    (dict(mixers=("attention", "mamba"), parallel_residual=True), r"layer 1: mixer 'mamba' .* sequential pre-norm"),
    (dict(mixers=()), r"mixers must not be empty"),
    (dict(arch="encoder", head="mlm", mixers=("mamba",)), r"layer 0: mixer 'mamba' is only built for arch='decoder'"),
])
def test_bad_specs_name_the_layer_and_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**{**TINY, **changes})
