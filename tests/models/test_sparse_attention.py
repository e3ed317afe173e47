"""GPT-3's alternating dense and locally banded sparse attention (Brown et al. 2020, section 2.1, after
Child et al. 2019's Sparse Transformer) as a layer pattern: ModelConfig.layer_pattern=("global", "local")
with the band in sliding_window, the mechanism GPT-Neo's local layers already use.

Tested against the pattern's stated properties: a banded layer's output at position t ignores tokens more
than `band` positions back (a dense one does not), cached decoding equals the full forward, and the zoo's
GPT-3 cards carry the pattern with their parameter counts unchanged."""

from __future__ import annotations

import pytest
import torch

from llmzoo.errors import ConfigError
from llmzoo.flops import attention_flops, count_params
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.zoo import get_card, get_config
from tests.parity.base import check_cached_decoding
from tests.parity.decoding import check_chunked_cached_decoding
from tests.parity.decoding import check_generate_ids_matches_uncached_greedy, check_static_cache_decoding

BAND = 3


def tiny_gpt3(**kw):
    """The zoo's GPT-3 at toy size, the pattern kept, the band shortened so it bites in a short sequence."""
    return get_config("gpt-3-125m").replace(**{**dict(vocab_size=53, d_model=16, n_layers=4, n_heads=2, d_ff=32,
                                                      max_seq_len=32, sliding_window=BAND), **kw})


def _outputs(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("kind", ["local", "global"])
def test_a_banded_layer_ignores_tokens_more_than_band_back(kind):
    torch.manual_seed(0)
    model = build_model(tiny_gpt3(n_layers=1, layer_pattern=(kind,))).eval()
    ids = torch.randint(0, 53, (1, 10), generator=torch.Generator().manual_seed(1))
    base = _outputs(model, ids)
    for s in range(9):  # change the token at position s; look at every later position t
        changed = ids.clone()
        changed[0, s] = (changed[0, s] + 1) % 53
        out = _outputs(model, changed)
        for t in range(s + 1, 10):
            same = torch.allclose(out[0, t], base[0, t])
            # banded: keys t - band + 1 .. t are visible, so a token at s <= t - band cannot reach t
            assert same == (kind == "local" and s <= t - BAND), (kind, s, t)


def test_gpt3_layers_alternate_dense_and_banded():
    c = get_config("gpt-3-175b")
    assert [c.layer_kind(i) for i in range(4)] == ["global", "local", "global", "local"]
    assert c.sliding_window == 256
    assert {get_config(n).layer_pattern for n in ("gpt-3-125m", "webgpt-175b", "instructgpt-1.3b")} == {("global", "local")}


def test_cached_decoding_with_banded_layers_equals_the_full_forward():
    torch.manual_seed(0)
    model = build_model(tiny_gpt3()).eval()
    check_cached_decoding(model, prefix=5, total=12)  # 12 tokens > band: the band moves as the cache grows
    check_chunked_cached_decoding(model, seq_len=14, prefix=5, chunk=3)


def test_static_cache_decoding_with_banded_layers_equals_the_full_forward():
    torch.manual_seed(0)
    check_static_cache_decoding(build_model(tiny_gpt3()).eval(), prefix=4, total=10)


def test_generate_ids_with_banded_layers_matches_uncached_greedy():
    torch.manual_seed(0)
    check_generate_ids_matches_uncached_greedy(build_model(tiny_gpt3()).eval())


@pytest.mark.parametrize("name", ["gpt-3-125m", "gpt-3-13b", "gpt-3-175b"])
def test_gpt3_counts_are_unchanged_by_the_pattern(name):
    c = get_config(name)
    dense = c.replace(layer_pattern=None, sliding_window=None)
    meta = count_parameters(build_model(c, device="meta"))
    assert meta == count_parameters(build_model(dense, device="meta")) == count_params(c)
    assert meta == pytest.approx(get_card(name).params_published, rel=0.02)
    # sparsity removes no weights, only attention work: banded layers see 256 keys, not 2048
    assert attention_flops(c, 2048) < attention_flops(dense, 2048)


def test_llmzoo_show_describes_the_pattern(capsys):
    from llmzoo.cli import main

    assert main(["show", "gpt-3-175b"]) == 0
    out = capsys.readouterr().out
    assert "window 256, pattern global/local" in out
    assert "dense and banded layers alternate" in " ".join(out.split())  # the card's text, wrapped


@pytest.mark.parametrize("band, layer", [(0, 1), (-4, 1)])
def test_a_band_that_is_not_positive_names_the_layer_and_field(band, layer):
    with pytest.raises(ConfigError, match=rf"layer {layer}: local \(banded\) attention needs sliding_window > 0"
                                          rf".*sliding_window={band}"):
        tiny_gpt3(sliding_window=band)


def test_a_local_layer_without_a_band_is_refused():
    with pytest.raises(ConfigError, match="sliding_window is not set"):
        tiny_gpt3(sliding_window=None)
