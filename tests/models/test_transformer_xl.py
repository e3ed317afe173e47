"""Transformer-XL relative attention and segment-level recurrence (Dai et al. 2019), by its stated properties:
the four-term score with the relative shift equals a naive per-(query, key) loop; recurrence over segments
equals one long forward while the memory covers the past; a shorter memory bounds what an output can see;
no gradient reaches the memory; cached decoding equals full forwards. No reference implementation ships
with transformers any more (TransfoXL was removed), so these properties are the reference."""

from __future__ import annotations

import pytest
import torch

import llmzoo
from llmzoo.cli import main as cli_main
from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.infer.cache import Cache
from llmzoo.models.build import build_model
from llmzoo.models.zoo import get_card
from llmzoo.nn.xl_relative import XLPositions, XLRelativeAttention, rel_shift, xl_sinusoid

torch.manual_seed(0)


def _config(**kw) -> ModelConfig:
    base = dict(name="tiny-xl", arch="decoder", vocab_size=50, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                max_seq_len=128, position="xl_relative", norm="rmsnorm", activation="gelu", mlp_gated=False,
                tie_embeddings=False, mem_len=64)
    base.update(kw)
    return ModelConfig(**base)


def _model(**kw):
    torch.manual_seed(0)
    model = build_model(_config(**kw)).eval()
    with torch.no_grad():  # u, v start at zero; random values exercise terms (c) and (d)
        model.xl_positions.u.normal_(0, 0.5)
        model.xl_positions.v.normal_(0, 0.5)
    return model


def test_rel_shift_puts_each_distance_under_its_key() -> None:
    T, S = 3, 5
    # column c of row i holds distance S-1-c; after the shift, (i, j) must hold distance S-T+i-j
    distances = torch.arange(S - 1, -1, -1).float().expand(T, S)
    shifted = rel_shift(distances)
    for i in range(T):
        for j in range(S - T + i + 1):
            assert shifted[i, j] == S - T + i - j


@pytest.mark.parametrize("memory_len", [0, 3])
def test_attention_equals_a_naive_loop_over_the_four_terms(memory_len: int) -> None:
    config = _config(n_kv_heads=2)
    attn = XLRelativeAttention(config, 0).eval()
    positions = XLPositions(config)
    with torch.no_grad():
        positions.u.normal_()
        positions.v.normal_()
    B, T, H, hd = 2, 4, config.n_heads, config.hd
    x = torch.randn(B, T, config.d_model)
    memory = torch.randn(B, memory_len, config.d_model) if memory_len else None
    S = memory_len + T
    with torch.no_grad():
        out = attn(x, is_causal=True, xl=positions(S), memory_states=memory)

        kv_in = x if memory is None else torch.cat((memory, x), 1)
        q = attn.q_proj(x).view(B, T, H, hd)
        k = attn.k_proj(kv_in).view(B, S, 2, hd).repeat_interleave(2, dim=2)
        v = attn.v_proj(kv_in).view(B, S, 2, hd).repeat_interleave(2, dim=2)
        u, vb = positions.u, positions.v
        expected = torch.zeros(B, T, H, hd)
        for b in range(B):
            for h in range(H):
                for i in range(T):
                    query_at = memory_len + i
                    scores = []
                    for j in range(query_at + 1):
                        r = attn.r_proj(xl_sinusoid(torch.tensor([query_at - j]), config.d_model)[0]).view(H, hd)[h]
                        qi, kj = q[b, i, h], k[b, j, h]
                        scores.append(qi @ kj + qi @ r + u[h] @ kj + vb[h] @ r)  # terms (a) (b) (c) (d)
                    probs = (torch.stack(scores) * hd**-0.5).softmax(0)
                    expected[b, i, h] = probs @ v[b, : query_at + 1, h]
        expected = attn.o_proj(expected.reshape(B, T, H * hd))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_recurrence_equals_one_long_forward_when_the_memory_covers_the_past() -> None:
    model = _model(mem_len=64)
    ids = torch.randint(0, 50, (2, 24))
    with torch.no_grad():
        full = model(ids).logits
        mems, pieces = None, []
        for start in range(0, 24, 8):
            out = model(ids[:, start:start + 8], mems=mems)
            pieces.append(out.logits)
            mems = out.mems
    assert len(mems) == 2 and mems[0].shape == (2, 24, 32)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)


def _segmented_logits(model, ids: torch.Tensor, segment: int) -> torch.Tensor:
    mems, pieces = None, []
    with torch.no_grad():
        for start in range(0, ids.shape[1], segment):
            out = model(ids[:, start:start + segment], mems=mems)
            pieces.append(out.logits)
            mems = out.mems
    return torch.cat(pieces, 1)


def _changes_last_segment(model, ids: torch.Tensor, segment: int, position: int) -> bool:
    other = ids.clone()
    other[0, position] = (ids[0, position] + 1) % 50
    a, b = _segmented_logits(model, ids, segment), _segmented_logits(model, other, segment)
    return not torch.allclose(a[:, -segment:], b[:, -segment:], atol=1e-6)


def test_a_short_memory_bounds_what_one_layer_sees() -> None:
    # One layer: the last segment (tokens 16..19) sees exactly the mem_len = 4 tokens before it and itself.
    model = _model(n_layers=1, mem_len=4)
    ids = torch.randint(0, 50, (1, 20))
    assert _changes_last_segment(model, ids, 4, 12)  # the first token in memory
    assert not _changes_last_segment(model, ids, 4, 11)  # one before it


def test_each_layer_extends_the_reach_by_at_most_one_memory_and_segment() -> None:
    # Dai et al. 2019, section 3.2: the dependency length grows as O(N x L); here by at most mem_len + segment - 1
    # tokens per layer, and a second layer sees further back than one layer can.
    layers, mem_len, segment = 2, 4, 4
    model = _model(n_layers=layers, mem_len=mem_len)
    ids = torch.randint(0, 50, (1, 32))
    last_start = 32 - segment
    assert _changes_last_segment(model, ids, segment, last_start - mem_len - 1)  # beyond one layer's window
    assert not _changes_last_segment(model, ids, segment, last_start - layers * (mem_len + segment))


def test_no_gradient_flows_into_the_memory() -> None:
    model = _model(mem_len=8)
    model.train()
    first, second = torch.randint(0, 25, (1, 8)), torch.randint(25, 50, (1, 8))
    mems = model(first).mems
    assert all(not m.requires_grad for m in mems)
    model.zero_grad()
    model(second, mems=mems).logits.sum().backward()
    grad = model.embeddings.tokens.weight.grad
    assert grad[:25].abs().sum() == 0  # the first segment's tokens get nothing (stop-gradient)
    assert grad[25:].abs().sum() > 0
    assert model.layers[0].self_attn.k_proj.weight.grad.abs().sum() > 0  # projections of the memory still learn


def test_cached_decoding_equals_full_forwards() -> None:
    model = _model(mem_len=0)
    ids = torch.randint(0, 50, (1, 12))
    with torch.no_grad():
        full = model(ids).logits
        cache = Cache.for_model(model, 1, 16)
        steps = [model(ids[:, :5], cache=cache).logits]
        cache.advance(5)
        for t in range(5, 12):
            steps.append(model(ids[:, t:t + 1], cache=cache).logits)
            cache.advance(1)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_generate_ids_equals_greedy_full_forwards_batched_and_alone() -> None:
    model = _model(mem_len=0)
    prompts = [[3, 14, 15, 9, 2, 6], [5, 35]]
    batched = llmzoo.generate_ids(model, prompts, max_new_tokens=6)
    for prompt, got in zip(prompts, batched):
        seq = list(prompt)
        with torch.no_grad():
            for _ in range(6):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
        assert got.token_ids == seq[len(prompt):]


def test_bad_settings_are_typed_errors() -> None:
    with pytest.raises(ConfigError, match="mem_len"):
        _config(position="rope", mem_len=8)
    with pytest.raises(ConfigError, match="xl_relative"):
        _config(arch="encoder", head="mlm")
    rope = build_model(_config(position="rope", mem_len=0)).eval()
    with pytest.raises(LlmzooError, match="mems"):
        rope(torch.ones(1, 2, dtype=torch.long), mems=(torch.zeros(1, 2, 32),) * 2)
    xl = _model(mem_len=4)
    mems = xl(torch.ones(1, 4, dtype=torch.long)).mems
    with pytest.raises(LlmzooError, match="not both"):
        xl(torch.ones(1, 2, dtype=torch.long), mems=mems, cache=Cache.for_model(xl, 1, 8))
    with pytest.raises(LlmzooError, match="tensors"):
        xl(torch.ones(1, 2, dtype=torch.long), mems=mems[:1])


def test_gopher_and_chinchilla_cards_build_transformer_xl(capsys) -> None:
    for name in ("gopher-280b", "chinchilla-70b", "gopher-44m"):
        card = get_card(name)
        assert card.config.position == "xl_relative" and not card.approximation
    assert cli_main(["show", "chinchilla-70b"]) == 0
    out = capsys.readouterr().out
    assert "Transformer-XL" in out and "xl_relative" in out


def test_lamda_keeps_t5_buckets_which_the_decoder_builds() -> None:
    # Thoppilan et al. 2022 use T5's relative attention, not Transformer-XL's: the card stays on buckets.
    config = get_card("lamda-137b").config
    assert config.position == "relative_bias"
    small = build_model(config.replace(d_model=64, n_layers=1, n_heads=2, head_dim=32, d_ff=128, vocab_size=64), device="meta")
    assert hasattr(small, "relative_bias")


def test_a_stack_that_drops_the_relative_encodings_is_refused() -> None:
    attn = XLRelativeAttention(_config(), 0)
    with pytest.raises(LlmzooError, match="relative encodings"):
        attn(torch.randn(1, 2, 32), is_causal=True)


def test_left_padding_in_the_memory_changes_nothing_for_real_tokens() -> None:
    # The mask of a forward with mems covers memory + new tokens; left pads only precede the real tokens,
    # so no real distance counts them.
    model = _model(mem_len=16)
    first, second = torch.randint(1, 50, (1, 4)), torch.randint(1, 50, (1, 4))
    with torch.no_grad():
        alone = model(first)
        alone_next = model(second, mems=alone.mems).logits
        padded_first = torch.cat((torch.zeros(1, 2, dtype=torch.long), first), 1)
        mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
        padded = model(padded_first, attention_mask=mask)
        padded_next = model(second, mems=padded.mems, attention_mask=torch.cat((mask, torch.ones(1, 4, dtype=torch.long)), 1)).logits
    torch.testing.assert_close(padded.logits[:, 2:], alone.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded_next, alone_next, atol=1e-5, rtol=1e-5)


def test_saved_and_loaded_through_the_public_api(tmp_path) -> None:
    model = _model(mem_len=8)
    llmzoo.save(model, tmp_path / "xl", format="llmzoo")
    loaded = llmzoo.load(tmp_path / "xl")
    ids = torch.randint(0, 50, (1, 6))
    with torch.no_grad():
        a, b = model(ids), loaded(ids)
        torch.testing.assert_close(loaded(ids[:, :2], mems=a.mems).logits, model(ids[:, :2], mems=a.mems).logits)
    assert loaded.config.mem_len == 8
    torch.testing.assert_close(b.logits, a.logits)
    with pytest.raises(LlmzooError, match="xl_relative"):  # no Hugging Face layout holds W_R, u, v
        llmzoo.save(model, tmp_path / "hf", format="hf")
