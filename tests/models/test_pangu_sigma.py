"""PanGu-Sigma (Ren et al. 2023): dense shared lower layers, Random Routed Experts above them (llmzoo.nn.rre).

The routing is no learned gate but a fixed random map of (domain, token id); the tests check the properties the
paper builds on: the route is a pure function of those two, a token's output depends on its own expert only,
and a domain's extracted sub-model computes exactly what the full model computes for that domain."""

from __future__ import annotations

import pytest
import torch

from llmzoo.cli import main
from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.flops import count_params
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.zoo import get_card
from llmzoo.nn.rre import RandomRoutedExperts, extract_domain, routing_table
from tests.parity.base import check_cached_decoding

V, DOMAINS, PER_DOMAIN = 50, 3, 4


def tiny(**changes) -> ModelConfig:
    """The full-size card's architecture, shrunk: 2 dense shared layers, 2 RRE layers of 3 domains x 4 experts."""
    base = get_card("pangu-sigma-1.085t").config.replace(
        vocab_size=V, d_model=32, n_layers=4, n_heads=4, d_ff=48, max_seq_len=32,
        ffns=("dense", "dense", "rre", "rre"), n_experts=DOMAINS * PER_DOMAIN, rre_domains=DOMAINS)
    return base.replace(**changes)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny()).eval()


def test_full_size_count_is_the_papers():
    card = get_card("pangu-sigma")
    config = card.config
    built = build_model(config, device="meta")
    assert count_parameters(built) == count_params(config)
    assert abs(count_params(config) / card.params_published - 1) < 0.02  # 1.085T (Ren et al. 2023)
    assert card.params_published == 1.085e12
    assert [config.ffn_kind(i) for i in range(config.n_layers)] == ["dense"] * 32 + ["rre"] * 8
    # The paper evaluates a Chinese-domain sub-model of 38B parameters: the shared layers + one domain's experts.
    sub = config.replace(n_experts=config.n_experts // config.rre_domains, rre_domains=1)
    assert abs(count_params(sub) / 38e9 - 1) < 0.02
    # one expert per token in 8 of 40 layers: the active count is a dense 40-layer PanGu-alpha 13B's
    dense = config.replace(ffns=("dense",), n_experts=0)
    assert count_params(config, active=True) == count_params(dense)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_route_is_a_pure_function_of_domain_and_token(seed):
    """Every (domain, token id) pair, looked up alone, goes where it goes inside random batches, in a rebuilt
    layer too; the expert is in the domain's group (exhaustive over the tiny vocabulary and domains)."""
    config = tiny(rre_seed=seed)
    layer, again = RandomRoutedExperts(config, 2), RandomRoutedExperts(config, 2)
    pairs = torch.cartesian_prod(torch.arange(DOMAINS), torch.arange(V))  # (D * V, 2)
    alone = torch.stack([layer.expert_ids(t.view(1, 1), d.view(1)).squeeze() for d, t in pairs])
    assert torch.equal(alone, again.expert_ids(pairs[:, 1:].T, pairs[:, :1].T).squeeze(0))
    assert bool(((alone // PER_DOMAIN) == pairs[:, 0]).all())  # level 1: the domain's own group
    lookup = alone.view(DOMAINS, V)
    g = torch.Generator().manual_seed(seed)
    for _ in range(20):
        ids, domains = torch.randint(0, V, (3, 6), generator=g), torch.randint(0, DOMAINS, (3, 6), generator=g)
        assert torch.equal(layer.expert_ids(ids, domains), lookup[domains, ids])


def test_maps_differ_by_layer_and_balance_the_vocabulary():
    config = tiny()
    a, b = routing_table(config, 2), routing_table(config, 3)
    assert a.shape == (DOMAINS, V) and not torch.equal(a, b)  # each RRE layer has its own map
    for row in a:  # a permutation dealt round-robin: each expert of a group owns V / 4 token ids (+-1)
        counts = torch.bincount(row, minlength=PER_DOMAIN)
        assert counts.max() - counts.min() <= 1
    assert not torch.equal(routing_table(tiny(rre_seed=1), 2), a)


def test_output_depends_only_on_the_tokens_own_expert():
    torch.manual_seed(0)
    layer = build_model(tiny()).layers[2].mlp  # its own copy: the weights are changed below
    g = torch.Generator().manual_seed(1)
    x, ids = torch.randn(2, 7, 32, generator=g), torch.randint(0, V, (2, 7), generator=g)
    domains = torch.tensor([0, 2])
    chosen = layer.expert_ids(ids, domains)
    with torch.no_grad():
        before = layer(x, ids, domains)
        # each token's output is exactly its expert's MLP on its hidden state
        expected = torch.stack([torch.stack([layer.experts[int(chosen[b, t])](x[b, t]) for t in range(7)])
                                for b in range(2)])
        torch.testing.assert_close(before, expected)
        token_expert = int(chosen[0, 3])
        other = next(e for e in range(DOMAINS * PER_DOMAIN) if e != token_expert)
        for p in layer.experts[other].parameters():
            p.add_(torch.randn_like(p))
        after = layer(x, ids, domains)
    untouched = chosen != other
    assert bool(untouched[0, 3])
    assert torch.equal(after[untouched], before[untouched])
    assert not torch.equal(after[~untouched], before[~untouched]) or not bool((~untouched).any())


def test_domain_sub_model_matches_the_full_model(model):
    """Ren et al. 2023: a domain's experts and the shared layers form a model of their own."""
    ids = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(2))
    for domain in range(DOMAINS):
        sub = extract_domain(model, domain).eval()
        assert sub.config.n_experts == PER_DOMAIN and sub.config.rre_domains == 1
        assert count_parameters(sub) == count_params(sub.config)
        with torch.no_grad():
            full = model(ids, domain_ids=torch.full((2,), domain)).logits
            torch.testing.assert_close(sub(ids).logits, full, rtol=0, atol=0)
    check_cached_decoding(sub)  # one domain, no domain_ids: cached decoding as any decoder


def test_per_token_domains_and_per_sequence_domains_agree(model):
    ids = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        per_seq = model(ids, domain_ids=torch.tensor([1, 2])).logits
        per_tok = model(ids, domain_ids=torch.tensor([[1] * 5, [2] * 5])).logits
    torch.testing.assert_close(per_seq, per_tok, rtol=0, atol=0)


def test_missing_or_bad_domains_are_one_line_errors(model):
    ids = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(LlmzooError, match="pass domain_ids"):
        model(ids)
    with pytest.raises(LlmzooError, match=r"domain_ids must be in \[0, 3\)"):
        model(ids, domain_ids=torch.tensor([3]))
    with pytest.raises(LlmzooError, match=r"fit neither \(B,\) nor \(B, T\)"):
        model(ids, domain_ids=torch.tensor([0, 1]))
    with pytest.raises(LlmzooError, match="domain 3 is not one of this model's 3 domains"):
        extract_domain(model, 3)
    with pytest.raises(LlmzooError, match="learned-router MoE layers"):
        extract_domain(build_model(tiny(ffns=("moe", "rre"))), 0)
    with pytest.raises(LlmzooError, match="has none"):
        build_model(tiny(ffns=("dense",), n_experts=0))(ids, domain_ids=torch.tensor([0]))


@pytest.mark.parametrize("changes, field", [
    ({"n_experts": 10}, "rre_domains=3 does not divide n_experts=10"),
    ({"n_experts": 0}, "n_experts=0"),
    ({"rre_domains": 0}, "rre_domains must be >= 1"),
    ({"rre_first_domain": -1}, "rre_first_domain must be >= 0"),
    ({"share_layers": True}, "share_layers"),
    ({"ffns": ("dense", "rra")}, "ffns entry 'rra'"),
])
def test_bad_specs_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        tiny(**changes)


def test_show_describes_it(capsys):
    assert main(["show", "pangu-sigma-1.085t"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Random Routed Experts in layers 32-39: 640 experts in 40 domain groups of 16" in out
    assert "no router" in out and "1.08T counted from the config" in out


def test_bf16_autocast_runs(model):
    """Under autocast the experts compute in bf16 while the residual stream stays fp32."""
    ids = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = model(ids, domain_ids=torch.tensor([0, 1])).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(ids, domain_ids=torch.tensor([0, 1])).logits
    torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)
