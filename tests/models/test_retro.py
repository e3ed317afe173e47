"""RETRO (Borgeaud et al. 2022): the paper's properties of chunked cross-attention (a chunk attends only to
the neighbours of the chunk before it, section 2.4; causality across chunks; no neighbours = the plain
decoder), CCA against a direct per-token computation of its formula, a planted neighbour helping its
continuation after a few training steps, and the 7.5B config's count against the paper's Table 2."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.models.decoder import DecoderLM
from llmzoo.models.retro import Retro, build_retro
from llmzoo.models.retro_config import RetroConfig, retro_layers
from llmzoo.nn.xl_relative import xl_sinusoid

M, V = 4, 40  # chunk length m, vocabulary


def tiny_config(n_layers: int = 4, start: int = 2, every: int = 2, d: int = 32, enc: int = 16, k: int = 2) -> RetroConfig:
    dec = ModelConfig(vocab_size=V, d_model=d, n_layers=n_layers, n_heads=4, d_ff=2 * d, max_seq_len=64,
                      cross_attentions=retro_layers(n_layers, start, every), cca_chunk=M, cca_memory_dim=enc)
    encoder = ModelConfig(arch="encoder", head="none", position="learned", vocab_size=V, d_model=enc, n_layers=1,
                          n_heads=2, d_ff=2 * enc, max_seq_len=2 * M)
    return RetroConfig("tiny-retro", dec, encoder, n_neighbours=k)


def tiny_retro(**kw) -> Retro:
    torch.manual_seed(0)
    model = build_retro(tiny_config(**kw)).eval()
    with torch.no_grad():  # the relative-position biases start at 0; make them matter
        for name, p in model.named_parameters():
            if name.endswith((".u", ".v")):
                p.normal_()
    return model


def inputs(B: int = 2, T: int = 18, L: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, L, 2, 2 * M), generator=g)


def test_config_round_trips_through_json():
    import json

    config = tiny_config()
    assert RetroConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_retro_layers_follow_the_paper_pattern():
    # "every 3 layers starting from 6": 1-based layers 6, 9, ..., 30 of 32
    spec = retro_layers(32)
    assert [i + 1 for i, kind in enumerate(spec) if kind == "chunked"] == list(range(6, 33, 3))


@pytest.mark.parametrize("u", range(5))  # 4: the incomplete last chunk, whose neighbours no token reads
def test_a_chunk_reads_only_the_neighbours_of_the_chunk_before(u):
    model = tiny_retro()
    ids, nb = inputs()
    base = model(ids, neighbours=nb).logits
    other = nb.clone()
    other[:, u] = (other[:, u] + 1 + torch.randint(0, V - 1, other[:, u].shape)) % V  # every token differs
    changed = (model(ids, neighbours=other).logits - base).abs().amax(dim=(0, 2))  # (T,)
    first = M * (u + 1) - 1  # the last token of chunk u: the first of its attending chunk C_u^+
    assert torch.equal(changed[:first], torch.zeros(min(first, len(changed))))
    assert bool((changed[first:] > 1e-4).all())


@pytest.mark.parametrize("t", [0, 3, 5, 11, 17])
def test_causal_across_chunks(t):
    model = tiny_retro()
    ids, nb = inputs()
    other = ids.clone()
    other[:, t] = (other[:, t] + 1) % V
    a, b = model(ids, neighbours=nb).logits, model(other, neighbours=nb).logits
    assert torch.equal(a[:, :t], b[:, :t])
    assert not torch.allclose(a[:, t:], b[:, t:])


def _plain(model: Retro) -> DecoderLM:
    plain = DecoderLM(model.config.decoder.replace(cross_attentions=None)).eval()
    missing, unexpected = plain.load_state_dict(model.decoder.state_dict(), strict=False)
    assert not missing and all(".chunked_cross_attn." in k or ".cca_norm." in k for k in unexpected)
    return plain


def test_without_neighbours_or_with_zero_cca_weights_it_is_the_plain_decoder():
    model = tiny_retro()
    ids, nb = inputs()
    plain = _plain(model)(ids).logits
    torch.testing.assert_close(model(ids).logits, plain, rtol=0, atol=0)
    torch.testing.assert_close(model.decoder(ids).logits, plain, rtol=0, atol=0)
    with torch.no_grad():
        for i in model.config.cca_layers:
            model.decoder.layers[i].chunked_cross_attn.o_proj.weight.zero_()
    torch.testing.assert_close(model(ids, neighbours=nb).logits, plain, rtol=0, atol=0)


def test_short_sequences_have_no_chunk_to_attend_from():
    model = tiny_retro()
    ids, nb = inputs(T=M - 1)
    torch.testing.assert_close(model(ids, neighbours=nb).logits, _plain(model)(ids).logits, rtol=0, atol=0)


def test_cca_equals_its_formula_token_by_token():
    # CA(h_t, E_u) with u = (t + 1) // m - 1 and the relative distance m - 1 + i - j, computed per token.
    torch.manual_seed(0)
    model = tiny_retro()
    cca = model.decoder.layers[1].chunked_cross_attn
    B, T, k, r, d = 2, 13, 2, 2 * M, 32
    h, E = torch.randn(B, T, d), torch.randn(B, T // M, k, r, 16)
    out = cca(h, E)
    H, hd = cca.n_heads, cca.head_dim
    for t in range(T):
        u, i = (t + 1) // M - 1, (t + 1) % M  # i: the token's index in its attending chunk C_u^+
        if u < 0:
            assert torch.equal(out[:, t], torch.zeros(B, d))
            continue
        q = cca.q_proj(h[:, t]).view(B, H, hd)
        mem = E[:, u].reshape(B, k * r, -1)
        key, val = cca.k_proj(mem).view(B, k * r, H, hd), cca.v_proj(mem).view(B, k * r, H, hd)
        dist = torch.tensor([M - 1 + i - j for _ in range(k) for j in range(r)])
        rel = cca.r_proj(xl_sinusoid(dist, d)).view(k * r, H, hd)
        s = torch.einsum("bhd,bshd->bhs", q + cca.u, key) + torch.einsum("bhd,shd->bhs", q + cca.v, rel)
        p = (s * hd**-0.5).softmax(-1)
        ref = cca.o_proj(torch.einsum("bhs,bshd->bhd", p, val).reshape(B, H * hd))
        torch.testing.assert_close(out[:, t], ref, rtol=1e-5, atol=1e-5)


def test_a_planted_neighbour_helps_its_continuation_after_training():
    # Random passages A + B: B is unpredictable from A alone, but chunk 0's neighbour is the passage itself
    # (chunk and continuation), so the tokens predicting B can copy it through CCA.
    torch.manual_seed(0)
    model = build_retro(tiny_config(n_layers=2, start=2, k=1)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)

    def batch(n: int):
        rows = torch.randint(0, V, (n, 2 * M), generator=g)
        planted = rows[:, None, None]  # (n, L=1, k=1, 2m): chunk 0's neighbour is A + B
        random = torch.randint(0, V, planted.shape, generator=g)
        return rows, torch.cat((planted, random), dim=1)  # chunk 1's neighbour: noise

    def continuation_loss(rows, nb):  # positions m-1 .. 2m-2 predict B
        logits = model(rows, neighbours=nb).logits[:, M - 1 : 2 * M - 1]
        return F.cross_entropy(logits.reshape(-1, V), rows[:, M:].reshape(-1))

    for _ in range(150):
        loss = continuation_loss(*batch(32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    rows, nb = batch(256)
    with torch.no_grad():
        helped = continuation_loss(rows, nb)
        unrelated = continuation_loss(rows, torch.randint(0, V, nb.shape, generator=g))
    assert unrelated > 0.8 * math.log(V)  # without its passage the continuation stays a guess
    assert helped < 0.5 * unrelated


def test_mistakes_are_one_line_errors():
    model = tiny_retro()
    ids, nb = inputs()
    with pytest.raises(LlmzooError, match="chunks"):
        model(ids, neighbours=nb[:, :2])
    with pytest.raises(LlmzooError, match=r"\(B=2, chunks, k, r\)"):
        model(ids, neighbours=nb[0])
    with pytest.raises(ConfigError, match="no chunked cross-attention"):
        RetroConfig("x", tiny_config().decoder.replace(cross_attentions=None), tiny_config().encoder)
    with pytest.raises(ConfigError, match="pre-norm"):
        tiny_config().decoder.replace(norm_placement="post")
    with pytest.raises(ConfigError, match="cross_attentions entry 'dense'"):
        tiny_config().decoder.replace(cross_attentions=("dense",))


def test_retro_7_5b_has_the_papers_table_2_counts():
    # Borgeaud et al. 2022, Table 2 (parameters excluding embeddings): baseline 6,982M, RETRO 7,532M.
    from llmzoo.models.build import build_model, count_parameters
    from llmzoo.models.zoo import get_card

    card = get_card("retro-7.5b")
    config = card.composite
    built = build_retro(config, device="meta")
    assert config.count_params() == count_parameters(built)  # the analytic count `llmzoo models` lists
    assert tiny_config().count_params() == count_parameters(build_retro(tiny_config(), device="meta"))
    assert abs(config.count_params(embeddings=False) / 7_532e6 - 1) < 0.02
    assert abs(config.count_params(embeddings=False) / card.params_published - 1) < 0.02
    baseline = config.decoder.replace(cross_attentions=None)
    tables = baseline.vocab_size * baseline.d_model  # tied: one table
    assert abs((count_parameters(build_model(baseline, device="meta")) - tables) / 6_982e6 - 1) < 0.02
    assert [i + 1 for i in config.cca_layers] == list(range(6, 33, 3))


def test_show_describes_retro(capsys):
    from llmzoo.cli import main

    assert main(["show", "retro"]) == 0
    out = capsys.readouterr().out
    assert "retro-7.5b" in out and "d_model 4096" in out and "6, 9, 12" in out and "d_model 896" in out


def test_save_and_load_give_the_same_outputs(tmp_path):
    from llmzoo.retro.checkpoint import load_retro, save_retro

    model = tiny_retro()
    ids, nb = inputs()
    again = load_retro(save_retro(model, tmp_path / "retro"))
    torch.testing.assert_close(again(ids, neighbours=nb).logits, model(ids, neighbours=nb).logits, rtol=0, atol=0)
    assert again.decoder.lm_head.weight is again.decoder.embeddings.tokens.weight
    with pytest.raises(LlmzooError, match="not a saved RETRO model"):
        load_retro(tmp_path)
