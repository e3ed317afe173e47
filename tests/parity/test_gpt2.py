"""GPT-2 vs transformers: Conv1D (transposed) weights, fused c_attn, learned positions, gelu_new,
tied head; plus the layout of the original OpenAI release (bare keys, mask buffers)."""

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import llmzoo
from llmzoo.errors import CheckpointError
from tests.parity.base import check_parity, reference_logits, reference_model
from tests.parity.decoding import check_chunked_cached_decoding, load_reference, save_reference

TINY = dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=32)


def test_gpt2_tied(tmp_path):
    model = check_parity("GPT2LMHeadModel", transformers.GPT2Config(**TINY), tmp_path)
    assert model.config.tie_embeddings and model.config.activation == "gelu_tanh"
    assert model.config.d_ff == 4 * 64  # n_inner=None means 4 * n_embd


def test_gpt2_untied_custom_inner_unscaled(tmp_path):
    cfg = transformers.GPT2Config(**TINY, n_inner=96, activation_function="gelu", tie_word_embeddings=False,
                                  scale_attn_weights=False)
    model = check_parity("GPT2LMHeadModel", cfg, tmp_path)
    assert model.config.attn_scale == 1.0 and model.config.d_ff == 96


def test_gpt2_reorder_and_upcast_is_the_same_math_in_fp32(tmp_path):
    check_parity("GPT2LMHeadModel", transformers.GPT2Config(**TINY, reorder_and_upcast_attn=True), tmp_path)


def test_gpt2_original_release_layout(tmp_path):
    # The OpenAI release was saved from the bare GPT2Model (no "transformer." prefix) and kept
    # the causal-mask buffers attn.bias / attn.masked_bias next to the weights.
    ref = reference_model("GPT2LMHeadModel", transformers.GPT2Config(**TINY))
    ref.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    for i in range(TINY["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, 32, 32).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(state, tmp_path / "model.safetensors")
    ids = torch.randint(0, 128, (2, 10), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(llmzoo.load(tmp_path)(ids).logits.detach(), reference_logits(ref, ids))


@pytest.mark.parametrize("field", ["add_cross_attention"])
def test_gpt2_unsupported_variants_name_the_field(tmp_path, field):
    save_reference("GPT2LMHeadModel", transformers.GPT2Config(**TINY), tmp_path, **{field: True})
    with pytest.raises(CheckpointError, match=field):
        llmzoo.load(tmp_path)


def test_gpt2_scale_attn_by_inverse_layer_idx(tmp_path):
    # Layer i's scores divided by i + 1 as well (the CRFM/Mistral GPT-2 runs): equal both ways.
    model = check_parity("GPT2LMHeadModel", transformers.GPT2Config(**TINY, scale_attn_by_inverse_layer_idx=True),
                         tmp_path, seq_len=10)
    assert model.config.attn_scale_inverse_layer


def test_gpt2_cached_decoding(tmp_path):
    check_chunked_cached_decoding(load_reference("GPT2LMHeadModel", transformers.GPT2Config(**TINY), tmp_path))


def test_gpt2_save_refuses_what_the_layout_cannot_express(tmp_path):
    model = load_reference("GPT2LMHeadModel", transformers.GPT2Config(**TINY), tmp_path)
    model.config = model.config.replace(norm_placement="post")
    with pytest.raises(CheckpointError, match="norm_placement"):
        llmzoo.save(model, tmp_path / "out")
