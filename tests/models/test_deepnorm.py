"""DeepNorm (Wang et al. 2022) and GLM-130B's embedding gradient shrink (Zeng et al. 2022), checked
against the papers' stated formulas: a post-LN block computes LN(alpha x + f(x)); DeepNet's Xavier init
with gain beta reaches exactly ffn, v_proj and out_proj; the shrink scales the embeddings' gradient by its
factor and leaves the forward value alone; the zoo's GLM-130B uses both."""

from __future__ import annotations

import math

import pytest
import torch

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError
from llmzoo.flops import count_params
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.zoo import get_card, get_config
from tests.parity.base import check_cached_decoding

N = 2
TINY = dict(vocab_size=61, d_model=16, n_layers=N, n_heads=2, d_ff=24, max_seq_len=32, norm="layernorm",
            norm_placement="post", activation="gelu", mlp_gated=True, mlp_bias=True, qkv_bias=True,
            attn_out_bias=True, deepnorm="glm130b")


def test_the_papers_constants():
    glm, deepnet = ModelConfig(**TINY), ModelConfig(**{**TINY, "deepnorm": "deepnet"})
    assert glm.deepnorm_alpha == math.sqrt(2 * N) and glm.deepnorm_beta == 1 / math.sqrt(2 * N)
    assert deepnet.deepnorm_alpha == (2 * N) ** 0.25 and deepnet.deepnorm_beta == (8 * N) ** -0.25
    assert ModelConfig(**{**TINY, "deepnorm": None}).deepnorm_alpha == 1.0
    # a rule on the depth: a deeper config derived from it scales more
    assert glm.replace(n_layers=70).deepnorm_alpha == pytest.approx(math.sqrt(140))


def test_a_block_computes_layernorm_of_alpha_x_plus_f_x():
    torch.manual_seed(0)
    config = ModelConfig(**TINY)
    block = build_model(config).layers[0].eval()
    x = torch.randn(2, 5, 16)
    alpha = math.sqrt(2 * N)
    with torch.no_grad():
        h = block.attn_norm(alpha * x + block.self_attn(x, is_causal=True))
        expected = block.mlp_norm(alpha * h + block.mlp(h))
        got, _ = block(x, is_causal=True)
        plain = build_model(config.replace(deepnorm=None)).layers[0].eval()
        plain.load_state_dict(block.state_dict())  # the same weights in a plain post-LN block
        without = plain(x, is_causal=True)[0]
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(without, got)


def _xavier_std(linear: torch.nn.Linear, gain: float) -> float:
    fan_out, fan_in = linear.weight.shape
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


@pytest.mark.parametrize("rule", ["glm130b", "deepnet"])
def test_init_gain_beta_reaches_exactly_ffn_v_and_out_projections(rule):
    torch.manual_seed(0)
    config = ModelConfig(**{**TINY, "deepnorm": rule, "d_model": 128, "d_ff": 192, "n_heads": 4})
    model = build_model(config)
    beta = config.deepnorm_beta
    for block in model.layers:
        attn, mlp = block.self_attn, block.mlp
        gains = {attn.q_proj: 1.0, attn.k_proj: 1.0, attn.v_proj: beta, attn.o_proj: beta,
                 mlp.gate_proj: beta, mlp.up_proj: beta, mlp.down_proj: beta}
        for linear, gain in gains.items():
            assert linear.weight.std().item() == pytest.approx(_xavier_std(linear, gain), rel=0.05)
            assert linear.weight.mean().abs().item() < 0.1 * _xavier_std(linear, gain)
            assert torch.count_nonzero(linear.bias) == 0
    # the rest keeps build_model's init: N(0, 0.02) embeddings, unit norms
    assert model.embeddings.tokens.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(model.layers[0].attn_norm.weight, torch.ones(128))
    # and without DeepNorm nothing changes: v_proj is N(0, 0.02) again
    plain = build_model(config.replace(deepnorm=None))
    assert plain.layers[0].self_attn.v_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_embedding_gradient_is_scaled_and_the_forward_value_is_not():
    torch.manual_seed(0)
    config = ModelConfig(**{**TINY, "tie_embeddings": False})  # the head would add its own gradient to a tied table
    plain = build_model(config)
    shrunk = build_model(config.replace(embed_grad_scale=0.1))
    shrunk.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 61, (2, 7))
    outs = []
    for model in (plain, shrunk):
        logits = model(ids).logits
        logits.float().pow(2).mean().backward()
        outs.append(logits.detach())
    torch.testing.assert_close(outs[1], outs[0])
    grads = [dict(m.named_parameters()) for m in (plain, shrunk)]
    for name, p in grads[0].items():
        scale = 0.1 if name == "embeddings.tokens.weight" else 1.0
        torch.testing.assert_close(grads[1][name].grad, scale * p.grad, msg=name)


def test_cached_decoding_with_deepnorm_equals_the_full_forward():
    torch.manual_seed(0)
    check_cached_decoding(build_model(ModelConfig(**{**TINY, "position": "rope", "embed_grad_scale": 0.1})).eval())


def test_glm_130b_card_uses_deepnorm_and_the_shrink():
    c = get_config("glm-130b")
    assert (c.deepnorm, c.embed_grad_scale, c.norm_placement) == ("glm130b", 0.1, "post")
    assert c.deepnorm_alpha == pytest.approx(math.sqrt(140))
    meta = count_parameters(build_model(c, device="meta"))
    assert meta == count_params(c)
    assert meta == pytest.approx(get_card("glm-130b").params_published, rel=0.02)


def test_glm_130b_at_toy_size_trains_a_step():
    torch.manual_seed(0)
    c = get_config("glm-130b").replace(vocab_size=61, d_model=16, n_layers=2, n_heads=2, d_ff=24, max_seq_len=32)
    model = build_model(c)
    ids = torch.randint(0, 61, (2, 8))
    out = model(ids[:, :-1], targets=ids[:, 1:])
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.embeddings.tokens.weight.grad is not None


@pytest.mark.parametrize("changes, message", [
    (dict(deepnorm="deepnorm"), r"deepnorm 'deepnorm' is not one of \('deepnet', 'glm130b'\)"),
    (dict(norm_placement="pre"), r"deepnorm 'glm130b' scales a post-LN residual; it needs norm_placement='post'"),
    (dict(arch="encoder_decoder", head="lm"), r"deepnorm 'glm130b' has decoder-/encoder-only constants"),
    (dict(embed_grad_scale=0.0), r"embed_grad_scale must be in \(0, 1\] \(GLM-130B: 0.1\), got 0.0"),
    (dict(embed_grad_scale=1.5), r"embed_grad_scale must be in \(0, 1\]"),
])
def test_bad_settings_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**{**TINY, **changes})


def test_llmzoo_show_describes_deepnorm(capsys):
    from llmzoo.cli import main

    assert main(["show", "glm-130b"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "post-norm, DeepNorm (residual x11.8, init gain 0.0845), embedding gradient x0.1" in out
