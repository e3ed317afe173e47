"""The harness's loglikelihoods against a plain full forward of the same model, and batching."""

from __future__ import annotations

import pytest
import torch

import llmzoo
from llmzoo.errors import LlmzooError
from llmzoo.eval.lm import EvalLM, rolling_windows
from llmzoo.eval.requests import Loglikelihood, LoglikelihoodRolling
from llmzoo.models.zoo import get_config
from tests.eval.helpers import tiny_decoder, tiny_tokenizer

PAIRS = [("Question: How do I boil an egg?\nAnswer:", " Put it in boiling water."),
         ("The quick brown fox", " jumps over the lazy dog."), ("A stitch", " in time"),
         ("Answer: ", "nine"), ("", "The fox."), ("x", " saves nine. A stitch in time saves nine.")]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model(tok):
    return tiny_decoder(tok.vocab_size)


def _reference(model, tok, context: str, continuation: str) -> float:
    """Sum of log-softmax over the continuation's tokens from one full forward, tokenized as
    lm-eval's HF backend does (whole string, continuation = tokens past the context's)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    if context:
        whole, n_ctx = tok.encode(context + continuation), len(tok.encode(context))
    else:
        whole, n_ctx = [tok.bos_token_id or tok.eos_token_id or 0] + tok.encode(continuation), 1
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    return sum(logp[t - 1, whole[t]].item() for t in range(n_ctx, len(whole)))


def test_continuation_loglikelihood_equals_a_full_forward(model, tok):
    got = EvalLM(model, tok, batch_size=1).loglikelihood([Loglikelihood(c, x) for c, x in PAIRS])
    for (c, x), r in zip(PAIRS, got):
        assert r.logprob == pytest.approx(_reference(model, tok, c, x), abs=1e-4)


def test_batched_equals_unbatched(model, tok):
    reqs = [Loglikelihood(c, x) for c, x in PAIRS]
    one = EvalLM(model, tok, batch_size=1).loglikelihood(reqs)
    many = EvalLM(model, tok, batch_size=4).loglikelihood(reqs)
    for a, b in zip(one, many):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4) and a.is_greedy == b.is_greedy


def test_is_greedy_holds_for_the_greedy_continuation(model, tok):
    context = "The quick brown fox"
    ids = tok.encode(context)
    with torch.no_grad():
        for _ in range(3):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    cont_ids = ids[len(tok.encode(context)):]
    lm = EvalLM(model, tok)
    r = lm.score_tokens([(tok.encode(context), cont_ids)])[0]
    assert r.is_greedy and r.n_tokens == 3
    flipped = cont_ids[:-1] + [(cont_ids[-1] + 1) % tok.vocab_size]
    assert not lm.score_tokens([(tok.encode(context), flipped)])[0].is_greedy


def test_rolling_windows_cover_every_token_once_and_fit_the_context():
    tokens = list(range(100, 123))
    windows = rolling_windows(tokens, prefix_token=7, max_len=5)
    assert [t for _, cont in windows for t in cont] == tokens
    assert windows[0][0] == [7]
    for ctx, cont in windows[1:]:
        assert len(ctx) + len(cont) == 6  # max_len + 1: the input is max_len tokens
        assert ctx == tokens[tokens.index(cont[0]) - len(ctx):tokens.index(cont[0])]


def test_rolling_loglikelihood_in_one_window_equals_a_full_forward(tok):
    model = tiny_decoder(tok.vocab_size, max_seq_len=512)
    text = "The quick brown fox jumps over the lazy dog."
    (r,) = EvalLM(model, tok).loglikelihood_rolling([LoglikelihoodRolling(text)])
    assert r.logprob == pytest.approx(_reference(model, tok, "", text), abs=1e-4)
    small = tiny_decoder(tok.vocab_size, max_seq_len=4)  # same weights, windows of 4 tokens
    (w,) = EvalLM(small, tok).loglikelihood_rolling([LoglikelihoodRolling(text)])
    assert w.n_tokens == r.n_tokens == len(tok.encode(text))


def test_encoder_decoder_scores_the_teacher_forced_continuation(tok):
    base = get_config("t5-small")
    config = base.replace(vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=4, head_dim=8, d_ff=64,
                          max_seq_len=64, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    torch.manual_seed(0)
    model = llmzoo.build_model(config).eval()
    (r,) = EvalLM(model, tok).loglikelihood([Loglikelihood("The quick brown fox", " jumps over")])
    enc, dec = tok.encode("The quick brown fox"), tok.encode(" jumps over", add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([enc]), decoder_input_ids=torch.tensor([[0] + dec[:-1]])).logits[0]
    expected = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(dec)[:, None]).sum().item()
    assert r.logprob == pytest.approx(expected, abs=1e-4)


def test_a_model_without_an_lm_head_is_refused(tok):
    encoder = llmzoo.build_model(get_config("bert-base").replace(
        vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=4, d_ff=64, max_seq_len=64, head="none"))
    with pytest.raises(LlmzooError, match="not a language-model head"):
        EvalLM(encoder, tok)


def test_vocabulary_projection_in_chunks_changes_nothing(model, tok, monkeypatch):
    import llmzoo.eval.lm as lm_module

    reqs = [Loglikelihood(c, x) for c, x in PAIRS]
    whole = EvalLM(model, tok, batch_size=2).loglikelihood(reqs)
    monkeypatch.setattr(lm_module, "_CHUNK", 2)
    chunked = EvalLM(model, tok, batch_size=2).loglikelihood(reqs)
    for a, b in zip(whole, chunked):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4) and a.is_greedy == b.is_greedy


def test_generate_until_is_greedy_generation_cut_at_the_stop_string(model, tok):
    from llmzoo.eval.requests import GenerateUntil

    prompt = "The quick brown fox"
    full = llmzoo.generate(model, tok, prompt, max_new_tokens=12)
    (answer,) = EvalLM(model, tok).generate_until([GenerateUntil(prompt, (), 12)])
    assert answer == [full]
    if len(full) > 3:
        stop = full[2:4]
        (cut,) = EvalLM(model, tok).generate_until([GenerateUntil(prompt, (stop,), 12)])
        assert cut == [full[:full.index(stop)]]


def test_requests_with_the_same_input_share_a_forward_and_keep_their_scores(model, tok, monkeypatch):
    # MMLU-style: one prompt, one-token continuations -> the same model input for every choice.
    ctx = tok.encode("Question: How do I boil an egg?\nAnswer:")
    pairs = [(ctx, [t]) for t in (5, 6, 7, 8)] + [(tok.encode("A stitch"), tok.encode(" in time"))]
    lm = EvalLM(model, tok, batch_size=8)
    calls = []
    original = lm._score_decoder
    monkeypatch.setattr(lm, "_score_decoder", lambda groups: calls.append(len(groups)) or original(groups))
    got = lm.score_tokens(pairs)
    assert calls == [2]  # two distinct inputs, one batch
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ctx])).logits[0, -1].float(), -1)
    for (_, (t,)), g in zip(pairs[:4], got[:4]):
        assert g.logprob == pytest.approx(logp[t].item(), abs=1e-4)
    assert got[4].logprob == pytest.approx(_reference(model, tok, "A stitch", " in time"), abs=1e-4)


def test_a_continuation_longer_than_the_context_window_is_refused(tok):
    small = tiny_decoder(tok.vocab_size, max_seq_len=4)
    with pytest.raises(LlmzooError, match="does not fit"):
        EvalLM(small, tok).score_tokens([([1], list(range(10, 16)))])


def test_shared_contexts_score_as_full_forwards(model, tok, monkeypatch):
    # HellaSwag-like: contexts of different lengths, each with endings of different lengths. With
    # batch_size=2 the contexts run in forwards of 2 rows, in waves of WAVE_BATCHES * 2 contexts.
    from llmzoo.eval import lm as lm_module

    words = "the quick brown fox jumps over the lazy dog a stitch in time saves nine".split()
    contexts = [" ".join(words[start:start + n]) for start in range(3) for n in range(3, 11)]  # 24, distinct
    endings = [" saves nine.", " over the lazy dog and the quick brown fox.", " in", " jumps"]
    pairs = [(c, e) for i, c in enumerate(contexts) for e in endings[:2 + i % 3]]
    lm = EvalLM(model, tok, batch_size=2)
    waves = []
    original = lm._score_shared
    monkeypatch.setattr(lm, "_score_shared", lambda fams: waves.append(len(fams)) or original(fams))
    got = lm.loglikelihood([Loglikelihood(c, e) for c, e in pairs])
    assert sum(waves) == len(contexts) and len(waves) == -(-len(contexts) // (2 * lm_module.WAVE_BATCHES))
    for (c, e), r in zip(pairs, got):
        assert r.logprob == pytest.approx(_reference(model, tok, c, e), abs=1e-4)


@pytest.mark.parametrize("position", ["alibi", "xl_relative"])
def test_distance_aware_positions_score_as_full_forwards(tok, position):
    """ALiBi and Transformer-XL scores depend on query-key distance, so a context run once into a padded
    cache would put padding between context and continuation: such models take the plain path, and
    their scores still equal a full forward's (contexts of different lengths, several endings each)."""
    model = tiny_decoder(tok.vocab_size, position=position)
    pairs = [(c, e) for c in ("A stitch", "The quick brown fox jumps") for e in (" in time", " over the lazy dog.")]
    got = EvalLM(model, tok, batch_size=2).loglikelihood([Loglikelihood(c, e) for c, e in pairs])
    for (c, e), r in zip(pairs, got):
        assert r.logprob == pytest.approx(_reference(model, tok, c, e), abs=1e-4)
