"""GLaM (Du et al. 2022): a decoder with a top-2 MoE in every other layer, GEGLU dense feed-forwards and plain
experts. The full-size 64B/64E config has the paper's counts; a tiny one routes as GLaM says."""

from __future__ import annotations

import torch

from llmzoo.cli import main
from llmzoo.flops import count_params
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.zoo import get_card
from tests.parity.base import check_cached_decoding


def test_full_size_counts_are_the_papers():
    card = get_card("glam-64b-64e")
    config = card.config
    model = build_model(config, device="meta")
    total = count_parameters(model)
    assert total == count_params(config)
    assert round(total / 1e12, 1) == card.params_published / 1e12 == 1.2  # the paper's (rounded) 1.2T
    assert abs(count_params(config, active=True) / 96.6e9 - 1) < 0.02  # Table 4: 96.6B activated
    assert [config.ffn_kind(i) for i in range(4)] == ["moe", "dense"] * 2  # 32 MoE layers of 64
    assert sum(config.ffn_kind(i) == "moe" for i in range(config.n_layers)) == 32


def test_tiny_glam_routes_top2_in_every_other_layer():
    config = get_card("glam-1.2t").config.replace(vocab_size=97, d_model=32, n_layers=4, n_heads=4, head_dim=8,
                                                    d_ff=48, n_experts=4, max_seq_len=64)
    torch.manual_seed(0)
    model = build_model(config).eval()
    moe, dense = model.layers[0].mlp, model.layers[1].mlp
    assert type(moe).__name__ == "MoE" and type(dense).__name__ == "MLP"
    assert dense.gated and not moe.experts[0].gated  # GLU in the dense layers only (sec. 4)
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        out, logits = moe(x)
        probs = logits.softmax(-1)
        top = probs.topk(2, dim=-1)
        weights = top.values / top.values.sum(-1, keepdim=True)  # GShard: the two gates renormalised
        expected = sum(weights[..., s, None] * torch.stack([
            torch.stack([moe.experts[int(top.indices[b, t, s])](x[b, t]) for t in range(5)]) for b in range(2)])
            for s in range(2))
    torch.testing.assert_close(out, expected)
    check_cached_decoding(model)  # no capacity: each token's route is its own, cached decoding is exact


def test_show_describes_the_moe_layers(capsys):
    assert main(["show", "glam"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "MoE in every other layer: 64 experts (gelu), top-2" in out
    assert "active per token 96.6B" in out
