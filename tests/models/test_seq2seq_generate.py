"""Encoder-decoder generation: greedy and beam search token ids equal transformers' `generate` on
the same random-weight T5 and BART models; the cached decoder equals the uncached forward."""

import pytest
import torch
import transformers

import llmzoo
from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import Cache
from llmzoo.infer.seq2seq import banned_ngram_tokens, generate_seq2seq
from tests.parity.base import randomise

MAX_NEW = 10


def _t5():
    return "T5ForConditionalGeneration", transformers.T5Config(
        vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
        decoder_start_token_id=0, initializer_factor=0.1)


def _bart():
    return "BartForConditionalGeneration", transformers.BartConfig(
        vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=40)


@pytest.fixture(scope="module", params=[_t5, _bart], ids=["t5", "bart"])
def pair(request, tmp_path_factory):
    cls_name, cfg = request.param()
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    ref = getattr(transformers, cls_name)(cfg).eval()
    randomise(ref, seed=0, std=0.5)  # larger weights: tiny random models then vary their output more
    # no forced BOS/EOS: transformers would fill an unset (None) value from these model defaults
    ref.generation_config.forced_eos_token_id = None
    ref.generation_config.forced_bos_token_id = None
    path = tmp_path_factory.mktemp(cls_name)
    ref.save_pretrained(path)
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(3, cfg.vocab_size, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # a left-padded source row
    ids[1, :3] = cfg.pad_token_id
    # Random weights rarely pick the real EOS; use a token the model does emit as EOS, so
    # finished hypotheses (and beam search's bookkeeping of them) are exercised.
    out = ref.generate(ids, attention_mask=mask, generation_config=_gen_config(cfg, eos=None, num_beams=1))
    eos = int(out[0, 4])
    return ref, llmzoo.load(path), ids, mask, cfg, eos


def _gen_config(cfg, eos, num_beams, **kw):
    return transformers.GenerationConfig(
        do_sample=False, num_beams=num_beams, max_new_tokens=MAX_NEW, eos_token_id=eos,
        pad_token_id=cfg.pad_token_id, decoder_start_token_id=cfg.decoder_start_token_id, bos_token_id=None,
        forced_bos_token_id=None, forced_eos_token_id=None, min_length=0, no_repeat_ngram_size=0,
        repetition_penalty=1.0, **kw)


def _rows(seqs: torch.Tensor, eos: int) -> list[list[int]]:
    """Each row up to and including its first EOS (padding after it differs by convention)."""
    rows = []
    for row in seqs.tolist():
        cut = row.index(eos, 1) + 1 if eos in row[1:] else len(row)
        rows.append(row[:cut])
    return rows


def test_greedy_equals_transformers(pair):
    ref, model, ids, mask, cfg, eos = pair
    want = ref.generate(ids, attention_mask=mask, generation_config=_gen_config(cfg, eos, 1))
    got = generate_seq2seq(model, ids, mask, max_new_tokens=MAX_NEW, eos_token_id=eos)
    assert _rows(got, eos) == _rows(want, eos)
    assert got.shape == want.shape  # stops when every row has finished, like transformers
    assert any(eos in r[1:] for r in _rows(got, eos))


@pytest.mark.parametrize("length_penalty, early_stopping", [(1.0, False), (2.0, True), (-1.0, "never"), (0.5, False)])
def test_beam_search_equals_transformers(pair, length_penalty, early_stopping):
    ref, model, ids, mask, cfg, eos = pair
    want = ref.generate(ids, attention_mask=mask, generation_config=_gen_config(
        cfg, eos, 4, length_penalty=length_penalty, early_stopping=early_stopping))
    got = generate_seq2seq(model, ids, mask, max_new_tokens=MAX_NEW, eos_token_id=eos, num_beams=4,
                           length_penalty=length_penalty, early_stopping=early_stopping)
    assert _rows(got, eos) == _rows(want, eos)


def test_no_repeat_ngram_equals_transformers(pair):
    ref, model, ids, mask, cfg, eos = pair
    gc = _gen_config(cfg, eos, 3)
    gc.no_repeat_ngram_size = 2
    want = ref.generate(ids, attention_mask=mask, generation_config=gc)
    got = generate_seq2seq(model, ids, mask, max_new_tokens=MAX_NEW, eos_token_id=eos, num_beams=3,
                           no_repeat_ngram_size=2)
    assert _rows(got, eos) == _rows(want, eos)
    for row in _rows(got, eos):
        bigrams = list(zip(row, row[1:]))
        assert len(bigrams) == len(set(bigrams))


def test_cached_decoder_equals_uncached_forward(pair):
    _, model, ids, mask, cfg, _ = pair
    dec = torch.randint(3, cfg.vocab_size, (ids.shape[0], 6), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full = model(ids, dec, attention_mask=mask).logits
        memory = model.encode(ids, mask)
        cache = Cache.for_model(model, ids.shape[0], 6)
        steps = []
        for t in range(6):
            steps.append(model.decode(dec[:, t:t + 1], memory, attention_mask=mask, cache=cache)[1])
            cache.advance(1)
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    # and uncached generation equals cached generation
    a = generate_seq2seq(model, ids, mask, max_new_tokens=6, num_beams=2, use_cache=False)
    b = generate_seq2seq(model, ids, mask, max_new_tokens=6, num_beams=2)
    assert a.tolist() == b.tolist()


def test_sampling_is_seeded_and_respects_top_k(pair):
    _, model, ids, mask, _, _ = pair
    kw = dict(max_new_tokens=6, do_sample=True, temperature=1.0, top_k=1, eos_token_id=-1)
    top1 = generate_seq2seq(model, ids, mask, generator=torch.Generator().manual_seed(0), **kw)
    greedy = generate_seq2seq(model, ids, mask, max_new_tokens=6, eos_token_id=-1)
    assert top1.tolist() == greedy.tolist()  # top_k=1 sampling is greedy
    kw["top_k"] = None
    s1 = generate_seq2seq(model, ids, mask, generator=torch.Generator().manual_seed(0), **kw)
    s2 = generate_seq2seq(model, ids, mask, generator=torch.Generator().manual_seed(0), **kw)
    assert s1.tolist() == s2.tolist()


def test_banned_ngrams():
    seq = torch.tensor([[5, 6, 7, 5, 6, 5]])
    assert banned_ngram_tokens(seq, 2) == [[6, 6]]
    assert banned_ngram_tokens(seq, 3) == [[]]
    assert banned_ngram_tokens(torch.tensor([[5, 6, 5, 6]]), 3) == [[5]]


def test_missing_decoder_inputs_is_a_user_error(pair):
    _, model, ids, mask, _, _ = pair
    with pytest.raises(LlmzooError, match="decoder_input_ids \\(or labels\\) are required"):
        model(ids, attention_mask=mask)
    with pytest.raises(LlmzooError, match="beams"):
        generate_seq2seq(model, ids, mask, do_sample=True, num_beams=2)


def test_sinusoidal_transformer_cached_decoder_equals_forward():
    """The original Transformer (sinusoidal positions): the cache must offset decoder positions."""
    from llmzoo.config import ModelConfig
    from llmzoo.models.build import build_model

    config = ModelConfig(arch="encoder_decoder", vocab_size=50, d_model=32, n_layers=2, n_heads=4, d_ff=48,
                         max_seq_len=32, position="sinusoidal", embed_scale=32 ** 0.5, norm="layernorm",
                         norm_placement="post", final_norm=False, activation="relu", mlp_gated=False,
                         decoder_start_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    model = build_model(config).eval()
    ids, dec = torch.randint(1, 50, (2, 7)), torch.randint(1, 50, (2, 5))
    with torch.no_grad():
        full = model(ids, dec).logits
        memory = model.encode(ids)
        cache = Cache.for_model(model, 2, 5)
        steps = []
        for t in range(5):
            steps.append(model.decode(dec[:, t:t + 1], memory, cache=cache)[1])
            cache.advance(1)
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
