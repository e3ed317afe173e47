"""MPT vs transformers: ALiBi (also for a non-power-of-two head count), fused Wqkv, bias-free
LayerNorm and linears, softmax_scale; unsupported attn_config options are refused."""

import json

import pytest
import torch
import transformers
from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor

import llmzoo
from llmzoo.errors import CheckpointError
from llmzoo.nn.position import alibi_slopes
from tests.parity.base import check_cached_decoding, check_parity, reference_model

TINY = dict(vocab_size=128, d_model=64, n_layers=2, n_heads=4, expansion_ratio=4, max_seq_len=32)


def test_mpt_alibi_no_bias(tmp_path):
    model = check_parity("MptForCausalLM", transformers.MptConfig(**TINY), tmp_path, seq_len=14)
    assert model.config.position == "alibi" and not model.config.norm_bias
    check_cached_decoding(model)


def test_non_power_of_two_heads_and_softmax_scale(tmp_path):
    # 12 heads: MPT's slope interleaving for head counts that are not a power of two.
    cfg = transformers.MptConfig(**{**TINY, "d_model": 96, "n_heads": 12},
                                 attn_config={"softmax_scale": 0.2, "alibi_bias_max": 8})
    model = check_parity("MptForCausalLM", cfg, tmp_path, seq_len=16)
    assert model.config.attn_scale == 0.2
    check_cached_decoding(model)


@pytest.mark.parametrize("n_heads", [3, 6, 12, 20, 48])
@pytest.mark.parametrize("max_bias", [8, 16])
def test_slopes_equal_mpts_own_formula(n_heads, max_bias):
    # transformers ignores alibi_bias_max when running MPT (always 8), but its slope builder takes
    # it: the bias at distance 1 from the last key is -slope, per head.
    mpt = -build_mpt_alibi_tensor(n_heads, 2, alibi_bias_max=max_bias)[:, 0, 0]
    torch.testing.assert_close(alibi_slopes(n_heads, max_bias), mpt.float())


def _edited(tmp_path, attn_config=None, **changes):
    ref = reference_model("MptForCausalLM", transformers.MptConfig(**TINY))
    ref.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["attn_config"].update(attn_config or {})
    cfg.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


@pytest.mark.parametrize("attn_config, changes, field", [
    ({"qk_ln": True}, {}, "qk_ln"),
    ({"clip_qkv": 6.0}, {}, "clip_qkv"),
    ({"attn_type": "multiquery_attention"}, {}, "attn_type"),
    ({"prefix_lm": True}, {}, "prefix_lm"),
    ({}, {"no_bias": False}, "no_bias"),
    ({}, {"norm_type": "rmsnorm"}, "norm_type"),
])
def test_unsupported_variants_are_refused(tmp_path, attn_config, changes, field):
    with pytest.raises(CheckpointError, match=field):
        llmzoo.load(_edited(tmp_path, attn_config, **changes))


def test_logit_scale_is_honoured(tmp_path):
    # MosaicML's MPT multiplies the logits by logit_scale (transformers' port drops it).
    plain = llmzoo.load(_edited(tmp_path / "a"))
    scaled = llmzoo.load(_edited(tmp_path / "b", logit_scale="inv_sqrt_d_model"))
    ids = torch.arange(10).view(1, 10)
    with torch.no_grad():
        torch.testing.assert_close(scaled(ids).logits, plain(ids).logits / 8.0)  # 1 / sqrt(64)


def test_ffn_width_comes_from_the_weights(tmp_path):
    # transformers' MPT builds 4 * d_model whatever expansion_ratio says, so a checkpoint it saved
    # from expansion_ratio=2 holds 4 * d wide weights: llmzoo reads the width from them (warning).
    cfg = transformers.MptConfig(**{**TINY, "expansion_ratio": 2})
    ref = reference_model("MptForCausalLM", cfg)
    assert ref.transformer.blocks[0].ffn.up_proj.weight.shape[0] == 4 * TINY["d_model"]
    ref.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="expansion_ratio=2"):
        model = llmzoo.load(tmp_path)
    assert model.config.d_ff == 4 * TINY["d_model"]
    ids = torch.arange(12).view(1, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits, atol=1e-5, rtol=1e-4)


def test_saving_a_width_transformers_cannot_build_is_refused(tmp_path):
    from dataclasses import replace

    model = llmzoo.build_model(replace(llmzoo.load(_edited(tmp_path / "a")).config, d_ff=2 * TINY["d_model"]))
    with pytest.raises(CheckpointError, match="4 \\* d_model"):
        llmzoo.save(model, tmp_path / "b", format="hf")
