"""OPT vs transformers: learned positions at offset 2, ReLU, pre-norm; the post-norm variant
(do_layer_norm_before=false, as opt-350m) without biases; opt-350m's project_in/project_out
(word_embed_proj_dim != hidden_size) with post-norm, both ways and with cached decoding."""

import pytest
import torch
import transformers

import llmzoo
from llmzoo.errors import CheckpointError
from llmzoo.infer.cache import StaticCache
from tests.parity.base import check_parity
from tests.parity.decoding import check_chunked_cached_decoding, load_reference, save_reference

TINY = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=96,
            max_position_embeddings=32)


def test_opt_pre_norm(tmp_path):
    model = check_parity("OPTForCausalLM", transformers.OPTConfig(**TINY), tmp_path, seq_len=14)
    c = model.config
    assert c.position_offset == 2 and c.activation == "relu" and c.norm_placement == "pre" and c.final_norm
    assert model.embeddings.positions.num_embeddings == 32 + 2


def test_opt_post_norm_without_bias_untied(tmp_path):
    cfg = transformers.OPTConfig(**TINY, do_layer_norm_before=False, enable_bias=False, tie_word_embeddings=False)
    model = check_parity("OPTForCausalLM", cfg, tmp_path)
    assert model.config.norm_placement == "post" and not model.config.final_norm and not model.config.qkv_bias


PROJECTED = dict(TINY, hidden_size=32, word_embed_proj_dim=16, do_layer_norm_before=False)


@pytest.mark.parametrize("tied", [True, False])
def test_opt_350m_projections_post_norm(tmp_path, tied):
    model = check_parity("OPTForCausalLM", transformers.OPTConfig(**PROJECTED, tie_word_embeddings=tied), tmp_path)
    c = model.config
    assert c.embed_dim == 16 and c.d_model == 32 and c.norm_placement == "post" and not c.final_norm
    assert model.embeddings.tokens.weight.shape == (128, 16) and model.embeddings.positions.weight.shape[1] == 32
    assert model.embeddings.project.bias is None and model.project_out.bias is None


def test_opt_350m_projections_cached_decoding(tmp_path):
    check_chunked_cached_decoding(load_reference("OPTForCausalLM", transformers.OPTConfig(**PROJECTED), tmp_path))


def test_opt_350m_projections_static_cache_equals_full_forward(tmp_path):
    """The StaticCache path (compiled decoding) projects in and out as the eager forward does."""
    model = load_reference("OPTForCausalLM", transformers.OPTConfig(**PROJECTED), tmp_path)
    ids = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(0))
    cache = StaticCache.for_model(model, 2, 16)
    with torch.no_grad():
        full = model(ids).logits
        got = [model(ids[:, :6], cache=cache).logits]
        cache.advance(6)
        for t in range(6, 9):
            got.append(model(ids[:, t:t + 1], cache=cache).logits)
            cache.advance(1)
    torch.testing.assert_close(torch.cat(got, dim=1), full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("field, value", [("layer_norm_elementwise_affine", False)])
def test_opt_unsupported_variants_name_the_field(tmp_path, field, value):
    save_reference("OPTForCausalLM", transformers.OPTConfig(**TINY), tmp_path, **{field: value})
    with pytest.raises(CheckpointError, match=field):
        llmzoo.load(tmp_path)


def test_opt_cached_decoding(tmp_path):
    check_chunked_cached_decoding(load_reference("OPTForCausalLM", transformers.OPTConfig(**TINY), tmp_path))
