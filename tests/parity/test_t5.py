"""T5 v1.0 (ReLU, tied + rescaled head), T5 v1.1 / UL2 (gated MLP), mT5 against transformers."""

import pytest
import transformers

from tests.parity.seq2seq_helpers import check_seq2seq

TINY = dict(vocab_size=96, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_decoder_layers=3, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=20, decoder_start_token_id=0,
            initializer_factor=0.1)  # T5 inits its tables with std 1.0; smaller logits keep fp32 parity tight


def test_t5_v1_0_relu_scaled_tied_head(tmp_path):
    model, _ = check_seq2seq("T5ForConditionalGeneration", transformers.T5Config(**TINY), tmp_path)
    c = model.config
    assert (c.activation, c.mlp_gated, c.tie_embeddings, c.attn_scale) == ("relu", False, True, 1.0)
    assert c.logit_scale_rsqrt_d and c.logit_multiplier == pytest.approx(64 ** -0.5)
    assert c.decoder_layers == 3


@pytest.mark.parametrize("proj", ["gated-gelu", "gated-silu"])  # T5 v1.1 / mT5, UL2
def test_t5_v1_1_gated(tmp_path, proj):
    cfg = transformers.T5Config(**TINY, feed_forward_proj=proj, tie_word_embeddings=False)
    model, _ = check_seq2seq("T5ForConditionalGeneration", cfg, tmp_path)
    assert model.config.mlp_gated and model.config.logit_multiplier is None


def test_mt5(tmp_path):
    cfg = transformers.MT5Config(**TINY, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    model, _ = check_seq2seq("MT5ForConditionalGeneration", cfg, tmp_path)
    assert model.config.family == "mt5"


def test_long_distances_use_log_buckets(tmp_path):
    """Sequences longer than max_distance exercise the logarithmic and clamped buckets."""
    from tests.parity.seq2seq_helpers import seq2seq_inputs

    cfg = transformers.T5Config(**TINY)
    check_seq2seq("T5ForConditionalGeneration", cfg, tmp_path, seq2seq_inputs(cfg, src_len=40, tgt_len=30))
