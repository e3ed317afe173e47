"""PanGu-alpha's top query layer (Zeng et al. 2021), checked against the paper's stated properties: its
attention query is a learned embedding of the position only, it changes what the stack outputs, it keeps
the model causal, cached decoding equals the full forward, and the zoo's PanGu-alpha 200B uses it."""

from __future__ import annotations

import pytest
import torch

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.errors import CheckpointError, ConfigError, LlmzooError
from llmzoo.flops import count_params
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.zoo import get_card, get_config
from tests.parity.base import check_cached_decoding
from tests.parity.decoding import check_chunked_cached_decoding
from tests.parity.decoding import check_generate_ids_matches_uncached_greedy, check_static_cache_decoding


def tiny(**kw) -> ModelConfig:
    """The zoo's PanGu-alpha at toy size."""
    return get_config("pangu-alpha-200b").replace(**{**dict(vocab_size=53, d_model=16, n_layers=2, n_heads=2,
                                                           d_ff=32, max_seq_len=24), **kw})


def _queries(model, ids, **kw) -> torch.Tensor:
    """What the query layer's q_proj is applied to."""
    seen = []
    hook = model.top_query.self_attn.q_proj.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    with torch.no_grad():
        model(ids, **kw)
    hook.remove()
    return seen[0]


def test_the_query_depends_only_on_the_position():
    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    a, b = torch.randint(0, 53, (2, 9)), torch.randint(0, 53, (2, 9))
    table = model.top_query.query_embeddings.weight
    torch.testing.assert_close(_queries(model, a), table[:9].expand(2, 9, 16))
    torch.testing.assert_close(_queries(model, b), _queries(model, a))
    # left padding shifts the positions of the real tokens, so the queries shift with them
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1]] * 2)
    torch.testing.assert_close(_queries(model, a, attention_mask=mask)[:, 2:], table[:7].expand(2, 7, 16))


def test_the_stack_with_the_query_layer_differs_from_without():
    torch.manual_seed(0)
    with_layer = build_model(tiny()).eval()
    without = build_model(tiny(top_query_layer=False)).eval()
    missing = without.load_state_dict(with_layer.state_dict(), strict=False).unexpected_keys
    assert missing and all(k.startswith("top_query.") for k in missing)
    ids = torch.randint(0, 53, (2, 9))
    with torch.no_grad():
        assert not torch.allclose(with_layer(ids).logits, without(ids).logits)
        # the query layer reads the stack's normalised output: the same last hidden state before it
        h = without.norm(without(ids, output_hidden_states=True).hidden_states[-1])
        torch.testing.assert_close(with_layer(ids).last_hidden_state, with_layer.top_query(h, torch.arange(9).expand(2, 9),
                                                                                          is_causal=True))


def test_position_t_does_not_see_tokens_after_t():
    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    ids = torch.randint(0, 53, (1, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(ids).logits
        for s in range(10):
            changed = ids.clone()
            changed[0, s] = (changed[0, s] + 1) % 53
            out = model(changed).logits
            torch.testing.assert_close(out[0, :s], base[0, :s])  # earlier positions: untouched
            assert not torch.allclose(out[0, s], base[0, s])


def test_cached_decoding_with_the_query_layer_equals_the_full_forward():
    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    check_cached_decoding(model)
    check_chunked_cached_decoding(model)
    rope = build_model(tiny(position="rope")).eval()  # the query layer rotates its queries and keys too
    check_cached_decoding(rope)


def test_static_cache_decoding_with_the_query_layer_equals_the_full_forward():
    torch.manual_seed(0)
    check_static_cache_decoding(build_model(tiny()).eval(), prefix=5, total=9)


def test_generate_ids_matches_uncached_greedy():
    torch.manual_seed(0)
    check_generate_ids_matches_uncached_greedy(build_model(tiny()).eval())


def test_saves_in_llmzoo_format_and_is_refused_in_an_hf_layout(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny()).eval()
    llmzoo.save(model, tmp_path / "m", format="llmzoo")
    back = llmzoo.load(tmp_path / "m")
    ids = torch.randint(0, 53, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, model(ids).logits)
    gpt2_like = build_model(tiny(family="gpt2", activation="gelu_tanh"))  # no HF layout has the query layer
    with pytest.raises(CheckpointError):
        llmzoo.save(gpt2_like, tmp_path / "hf", format="hf")


def test_pangu_alpha_card_counts_within_two_percent_of_published():
    c = get_config("pangu-alpha-200b")
    assert c.top_query_layer and c.n_layers == 63  # the paper's 64 layers: 63 blocks and the query layer
    meta = count_parameters(build_model(c, device="meta"))
    assert meta == count_params(c)
    assert meta == pytest.approx(get_card("pangu-alpha-200b").params_published, rel=0.02)
    small = tiny()
    assert count_params(small) == count_parameters(build_model(small, device="meta"))


def test_llmzoo_show_describes_the_query_layer(capsys):
    from llmzoo.cli import main

    assert main(["show", "pangu-alpha"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "layers 63 + a top query layer (PanGu-alpha: queries are learned position embeddings)" in out


def test_bad_uses_are_one_line_errors():
    with pytest.raises(ConfigError, match="top_query_layer \\(PanGu-alpha\\) is built for arch='decoder'"):
        ModelConfig(arch="encoder", head="mlm", top_query_layer=True)
    model = build_model(tiny(position="rope")).eval()  # its query table has max_seq_len rows
    with pytest.raises(LlmzooError, match="exceeds this model's context of 24"):
        model(torch.randint(0, 53, (1, 25)))
