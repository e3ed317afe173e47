"""The per-layer spec (ModelConfig.mixers / ffns): patterns build the layers they say, the default
is today's transformer, hybrids decode with a cache, and specs that make no sense name the layer."""

from __future__ import annotations

import pytest
import torch
import transformers

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError
from llmzoo.flops import count_params
from llmzoo.models.build import build_model, count_parameters
from tests.parity.base import check_cached_decoding, check_parity, reference_model
from tests.parity.decoding import check_chunked_cached_decoding, check_generate_ids_matches_uncached_greedy

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
    check_generate_ids_matches_uncached_greedy(build_model(hybrid()).eval())


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


# --- Jamba (Lieber et al. 2024): attention, Mamba and MoE layers interleaved by the spec, equal to transformers'


def jamba_config(**kw):
    # Jamba-v0.1's layout at toy size: attention in one layer of four, MoE in every other layer
    base = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=8, num_attention_heads=4,
                num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, expert_layer_period=2,
                expert_layer_offset=1, attn_layer_period=4, attn_layer_offset=2, mamba_d_state=8, mamba_dt_rank=5,
                eos_token_id=None, bos_token_id=None, pad_token_id=0)
    return transformers.JambaConfig(**{**base, **kw})


def test_jamba_loads_and_saves_equal_to_transformers(tmp_path):
    model = check_parity("JambaForCausalLM", jamba_config(), tmp_path)
    c = model.config
    assert [c.mixer_kind(i) for i in range(8)] == ["mamba", "mamba", "attention", "mamba"] * 2
    assert [c.ffn_kind(i) for i in range(8)] == ["dense", "moe"] * 4
    check_cached_decoding(model)
    check_chunked_cached_decoding(model)


def test_jamba_without_experts_is_dense_everywhere(tmp_path):
    model = check_parity("JambaForCausalLM", jamba_config(num_experts=1, num_hidden_layers=4), tmp_path)
    assert model.config.n_experts == 0 and model.config.ffn_kind(1) == "dense"


def test_jamba_generate_ids_equals_transformers_generate(tmp_path):
    ref = reference_model("JambaForCausalLM", jamba_config())
    ref.save_pretrained(tmp_path / "hf")
    model = llmzoo.load(tmp_path / "hf")
    prompts = [[5, 17, 42, 8, 3, 66], [9, 1, 30]]  # the short prompt is left-padded in the batch
    got = llmzoo.generate_ids(model, prompts, max_new_tokens=8)
    for prompt, result in zip(prompts, got):
        ids = torch.tensor([prompt])
        expected = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
        assert result.token_ids == expected[0, len(prompt):].tolist()


def test_a_spec_jamba_cannot_express_is_refused_on_save(tmp_path):
    config = hybrid(family="jamba", position="none", mixers=("mamba", "attention", "attention"), ssm_inner_norms=True,
                    moe_renormalize=False, ffns=("dense", "moe"))
    with pytest.raises(llmzoo.LlmzooError, match="one attention layer per period"):
        llmzoo.save(build_model(config), tmp_path / "out", format="hf")


def test_cli_reports_a_bad_spec_as_one_line_with_exit_code_2(tmp_path, capsys):
    from llmzoo.cli import main
    from tests.train.helpers import tiny_recipe, write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(tmp_path / "data", tmp_path / "run"))
    assert main(["pretrain", "--recipe", str(recipe), "model.ffns=[dense,moe]", "model.n_experts=2",
                 "model.n_experts_per_token=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layer 1: MoE top-k n_experts_per_token=3" in err[0], err


def test_kv_cache_memory_counts_attention_layers_only():
    from llmzoo.scaling import kv_cache_bytes_per_token

    dense = ModelConfig(**TINY)
    one_in_four = dense.replace(mixers=("mamba",) * 3 + ("attention",), position="none")
    assert kv_cache_bytes_per_token(one_in_four) == kv_cache_bytes_per_token(dense) / 4
    assert kv_cache_bytes_per_token(dense.replace(mixers=("mamba",), ffns=("none",), position="none")) == 0
