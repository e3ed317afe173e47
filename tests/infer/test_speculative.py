"""Speculative decoding (llmzoo.infer.speculative) against plain decoding: greedy output identical,
sampling distribution preserved, stopping rules equal, through the API and the CLI."""

import itertools
import warnings

import pytest
import torch

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.errors import AssetMissingError, LlmzooError
from llmzoo.infer.generate import ContextLengthWarning, generate_ids
from llmzoo.infer.sampling import SamplingConfig, filter_logits
from llmzoo.infer.speculative import SpeculativeStats, lookup_continuation, speculative_generate_ids, truncated_draft
from llmzoo.models.build import build_model

BASE = ModelConfig(vocab_size=61, d_model=48, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=96, max_seq_len=64)
PROMPT = [5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6]  # repetitive: prompt lookup finds n-grams at once


@pytest.fixture(autouse=True)
def _eager_plain_decoding(monkeypatch):
    # Plain decoding's compiled step (llmzoo.infer.compiled) would compile for seconds on each tiny
    # model; the eager path is the reference here.
    monkeypatch.setenv("LLMZOO_COMPILE", "0")


def _model(config: ModelConfig, seed: int = 0, scale: float = 0.3):
    torch.manual_seed(seed)
    model = build_model(config).eval()
    with torch.no_grad():  # larger weights than init: peaked distributions, so drafts are often rejected
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


def _drafters(model, config, seed):
    return {"prompt-lookup": "prompt-lookup", "layers:1": "layers:1", "truncated 3": truncated_draft(model, 3),
            "unrelated": _model(config.replace(n_layers=1, d_model=32, n_heads=2, n_kv_heads=1), seed + 100)}


# --- drafting ----------------------------------------------------------------------------------------


def test_prompt_lookup_proposes_what_followed_the_last_ngram():
    assert lookup_continuation([1, 2, 3, 4, 9, 2, 3], 2) == [4, 9]  # "2 3" seen before, followed by 4 9
    assert lookup_continuation([1, 2, 3, 7, 3, 4, 1, 2, 3], 5) == [7, 3, 4, 1, 2]  # longest n-gram first
    assert lookup_continuation([1, 2, 3], 4) == []  # nothing repeats
    assert lookup_continuation([4, 4, 4], 3) == [4]  # an overlapping match; the continuation stops at the end


def test_truncated_draft_shares_the_first_layers():
    model = _model(BASE)
    draft = truncated_draft(model, 2)
    assert draft.config.n_layers == 2 and model.config.n_layers == 4 and len(model.layers) == 4
    assert draft.layers[1] is model.layers[1] and draft.lm_head.weight is model.lm_head.weight
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        after_two = model(ids, output_hidden_states=True).hidden_states[2]  # the target after its first two layers
        torch.testing.assert_close(draft(ids).logits, model.lm_head(model.norm(after_two)))
    with pytest.raises(LlmzooError, match="1 to 3"):
        truncated_draft(model, 4)


# --- greedy: identical to plain greedy ---------------------------------------------------------------------


@pytest.mark.parametrize("config", [BASE, BASE.replace(position="learned", norm="layernorm"),
                                    BASE.replace(position="alibi", sliding_window=6)],
                         ids=["rope", "learned", "alibi_window"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_equals_plain_greedy(config, seed):
    model = _model(config, seed)
    plain = generate_ids(model, [PROMPT], max_new_tokens=24)[0]
    for name, drafter in _drafters(model, config, seed).items():
        result = speculative_generate_ids(model, [PROMPT], speculative=drafter, max_new_tokens=24, num_draft_tokens=4)[0]
        assert result.token_ids == plain.token_ids, name
        assert result.finish_reason == plain.finish_reason
        stats = result.stats
        assert stats.new_tokens == 24 and stats.accepted <= stats.drafted
        # every round emits its kept drafts and one target token
        assert stats.target_forwards == 24 - stats.accepted


def test_greedy_with_repetition_penalty_equals_plain():
    model = _model(BASE, 3)
    sampling = SamplingConfig(repetition_penalty=1.3)
    plain = generate_ids(model, [PROMPT], max_new_tokens=20, sampling=sampling)[0].token_ids
    for name, drafter in _drafters(model, BASE, 3).items():
        ours = speculative_generate_ids(model, [PROMPT], speculative=drafter, max_new_tokens=20, sampling=sampling)
        assert ours[0].token_ids == plain, name


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning"])
def test_greedy_with_virtual_token_adapters_equals_plain(method):
    """An adapter's virtual tokens take cache slots before the prompt, in the target and in a draft
    that has its own adapter (its rollbacks must keep them)."""
    import llmzoo.peft

    model, draft = _model(BASE, 1), _model(BASE, 2)
    llmzoo.peft.apply(model, method, num_virtual_tokens=4)
    llmzoo.peft.apply(draft, method, num_virtual_tokens=3)
    with torch.no_grad():  # virtual tokens that change the output
        for p in model.virtual_tokens.parameters():
            p.add_(torch.randn_like(p))
    model.eval(), draft.eval()
    plain = generate_ids(model, [PROMPT], max_new_tokens=16)[0].token_ids
    for drafter in ("prompt-lookup", "layers:2", draft):
        assert speculative_generate_ids(model, [PROMPT], speculative=drafter, max_new_tokens=16)[0].token_ids == plain


def test_a_draft_that_always_agrees_is_accepted_in_full():
    model = _model(BASE, 4)
    plain = generate_ids(model, [PROMPT], max_new_tokens=18)[0].token_ids
    result = speculative_generate_ids(model, [PROMPT], speculative=model, max_new_tokens=18, num_draft_tokens=5)[0]
    assert result.token_ids == plain
    assert result.stats.accepted == result.stats.drafted and result.stats.target_forwards == 3  # 3 rounds of 5 + 1


# --- stopping: EOS, stop callbacks, max_new_tokens, the context limit --------------------------------------


def test_eos_stop_and_max_new_tokens_equal_plain():
    model = _model(BASE, 5)
    full = generate_ids(model, [PROMPT], max_new_tokens=24)[0].token_ids
    eos = {full[9]}  # the first time this token appears ends generation
    for drafter in _drafters(model, BASE, 5).values():
        def run(fn, **kw):
            return fn(model, [PROMPT], **kw)[0]

        for kw in [dict(max_new_tokens=1), dict(max_new_tokens=2), dict(max_new_tokens=7), dict(eos_ids=eos)]:
            plain, ours = run(generate_ids, **kw), run(speculative_generate_ids, speculative=drafter, **kw)
            assert (ours.token_ids, ours.finish_reason) == (plain.token_ids, plain.finish_reason), kw
        calls = {"plain": [], "ours": []}

        def stopper(key):
            def on_token(row, token):
                calls[key].append((row, token))
                return len(calls[key]) == 6  # a stop string found after the sixth token

            return on_token

        plain = run(generate_ids, max_new_tokens=24, on_token=stopper("plain"))
        ours = run(speculative_generate_ids, speculative=drafter, max_new_tokens=24, on_token=stopper("ours"))
        assert (ours.token_ids, ours.finish_reason) == (plain.token_ids, "stop")
        assert calls["ours"] == calls["plain"]  # never called past the stop


def test_context_limit_equals_plain():
    model = _model(BASE.replace(max_seq_len=20), 6)
    with pytest.warns(ContextLengthWarning):
        plain = generate_ids(model, [PROMPT], max_new_tokens=30)[0]
    for drafter in ("prompt-lookup", "layers:2"):
        with pytest.warns(ContextLengthWarning):
            ours = speculative_generate_ids(model, [PROMPT], speculative=drafter, max_new_tokens=30)[0]
        assert ours.token_ids == plain.token_ids and len(ours.token_ids) == 20 - len(PROMPT)


# --- sampling: the target distribution is preserved ----------------------------------------------------------

TINY = ModelConfig(vocab_size=4, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_seq_len=32)
SAMPLE_PROMPT = [0, 1, 2, 3, 0, 1]


def _exact_joint(model, sampling: SamplingConfig, n: int) -> dict[tuple[int, ...], float]:
    """P(first n tokens) of plain sampling, from full forwards (no cache) over every prefix."""
    V = model.config.vocab_size
    joint = {}
    with torch.no_grad():
        for seq in itertools.product(range(V), repeat=n):
            prob = 1.0
            for i in range(n):
                logits = model(torch.tensor([SAMPLE_PROMPT + list(seq[:i])])).logits[0, -1].double()
                probs = filter_logits(logits / sampling.temperature, sampling.top_k, sampling.top_p).softmax(-1)
                prob *= float(probs[seq[i]])
            joint[seq] = prob
    return joint


@pytest.mark.parametrize("drafter,sampling", [
    ("prompt-lookup", SamplingConfig(temperature=0.9, top_k=3)),
    ("model", SamplingConfig(temperature=1.2, top_p=0.9)),
])
def test_speculative_sampling_preserves_the_target_distribution(drafter, sampling):
    """Chi-square goodness of fit of the first 3 tokens (64 outcomes, 2 drafts per round, so the first
    round already accepts/rejects drafts and draws the bonus token) against the exact target law. A
    correct implementation fails with probability 1e-4 over the choice of seeds (the seeds are fixed,
    so the test is deterministic). Checked by breaking the rule: a rejection that samples p instead
    of the residual gives p-values near 1e-90 here, a draft drawn with the target's own seed 1e-7."""
    from scipy.stats import chi2

    model = _model(TINY, 7, scale=0.4)
    draft = "prompt-lookup" if drafter == "prompt-lookup" else _model(TINY, 8, scale=0.4)
    exact = _exact_joint(model, sampling, 3)
    runs = 2000
    counts = dict.fromkeys(exact, 0)
    drafted = accepted = 0
    for seed in range(runs):
        result = speculative_generate_ids(model, [SAMPLE_PROMPT], speculative=draft, num_draft_tokens=2,
                                          max_new_tokens=3, sampling=sampling, seed=seed)[0]
        counts[tuple(result.token_ids)] += 1
        drafted, accepted = drafted + result.stats.drafted, accepted + result.stats.accepted
    assert 0 < accepted < drafted  # both branches of the accept/reject rule ran
    # Outcomes expected fewer than 5 times are pooled (the chi-square approximation needs ~5 per cell).
    observed, expected, pooled_o, pooled_e = [], [], 0, 0.0
    for outcome, p in exact.items():
        if p * runs >= 5:
            observed.append(counts[outcome])
            expected.append(p * runs)
        else:
            pooled_o, pooled_e = pooled_o + counts[outcome], pooled_e + p * runs
    if pooled_e > 0:
        observed.append(pooled_o)
        expected.append(pooled_e)
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected))
    p_value = chi2.sf(statistic, df=len(observed) - 1)
    assert p_value > 1e-4, (statistic, len(observed), p_value)


# --- bad input -------------------------------------------------------------------------------------------


def test_bad_speculative_arguments_are_one_line_errors():
    model = _model(BASE)
    cases = [
        (dict(speculative=_model(BASE.replace(vocab_size=50))), "vocabulary of 50 tokens"),
        (dict(speculative="layers:9"), "1 to 3"),
        (dict(speculative="layers:x"), "layers:N"),
        (dict(speculative="medusa"), "prompt-lookup"),
        (dict(speculative=3), "prompt-lookup"),
        (dict(speculative="prompt-lookup", num_draft_tokens=0), "num_draft_tokens"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(LlmzooError, match=needle) as info:
            speculative_generate_ids(model, [PROMPT], max_new_tokens=4, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(LlmzooError, match="one prompt at a time"):
        speculative_generate_ids(model, [PROMPT, PROMPT], speculative="prompt-lookup")


def test_encoder_decoder_is_refused():
    t5 = build_model(ModelConfig(arch="encoder_decoder", vocab_size=40, d_model=32, n_layers=1, n_heads=4, d_ff=48,
                                 position="relative_bias", norm="rmsnorm"))
    with pytest.raises(LlmzooError, match="decoder models"):
        llmzoo.generate(t5, None, "Hi", speculative="prompt-lookup")


# --- the public API and the CLI ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A random 4-layer decoder and a trained byte-level BPE saved as a user's checkpoint directory."""
    from llmzoo.tokenizer.train import train_tokenizer
    from tests.data.helpers import english_doc

    corpus = tmp_path_factory.mktemp("corpus") / "c.txt"
    corpus.write_text("\n\n".join(english_doc(i, 200) for i in range(8)) + "\n", encoding="utf-8")
    tokenizer = train_tokenizer([corpus], vocab_size=300, progress=False)
    model = _model(ModelConfig(vocab_size=300, d_model=32, n_layers=4, n_heads=4, d_ff=64, max_seq_len=96), 9)
    out = tmp_path_factory.mktemp("tiny") / "model"
    llmzoo.save(model, out, tokenizer=tokenizer)
    # Drafts that do not fit: another vocabulary size, and the same size with other tokens.
    other_corpus = corpus.with_name("other.txt")
    other_corpus.write_text("\n\n".join(english_doc(i, 200) for i in range(50, 54)) + "\n", encoding="utf-8")
    others = []
    for vocab in (280, 300):
        other = tmp_path_factory.mktemp("other") / "model"
        llmzoo.save(build_model(ModelConfig(vocab_size=vocab, d_model=32, n_layers=1, n_heads=4, d_ff=64)), other,
                    tokenizer=train_tokenizer([other_corpus], vocab_size=vocab, progress=False))
        others.append(other)
    return out, *others


TEXT = "the garden river the garden river the garden"


def test_api_returns_plain_text_and_fills_the_stats(tiny_dir):
    model, tokenizer = llmzoo.load(tiny_dir[0]), llmzoo.load_tokenizer(tiny_dir[0])
    plain = llmzoo.generate(model, tokenizer, TEXT, max_new_tokens=20)
    pieces = []
    stats = SpeculativeStats()
    ours = llmzoo.generate(model, tokenizer, TEXT, max_new_tokens=20, speculative="prompt-lookup",
                           speculative_stats=stats, stream=pieces.append)
    assert ours == plain == "".join(pieces)
    assert stats.target_forwards >= 1 and stats.new_tokens > 0
    stop = plain[len(plain) // 2:][:3]
    if stop.strip():
        assert (llmzoo.generate(model, tokenizer, TEXT, max_new_tokens=20, stop=[stop], speculative="layers:2")
                == llmzoo.generate(model, tokenizer, TEXT, max_new_tokens=20, stop=[stop]))


def _cli(capsys, *argv):
    from llmzoo.cli import main

    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_cli_prints_the_same_text_and_the_acceptance_line(capsys, tiny_dir):
    source = str(tiny_dir[0])
    code, plain, err = _cli(capsys, "generate", source, "--prompt", TEXT, "--max-new-tokens", "16")
    assert code == 0, err
    for spec in (["--speculative", "prompt-lookup"], ["--speculative", "layers:2", "--draft-tokens", "3"],
                 ["--speculative", source]):  # the target as its own draft: every draft kept
        code, out, err = _cli(capsys, "generate", source, "--prompt", TEXT, "--max-new-tokens", "16", *spec)
        assert code == 0, err
        assert out == plain
        line = err.splitlines()[-1]
        assert line.startswith("speculative: accepted ") and " drafted tokens (" in line
        assert "target forwards for" in line


def test_cli_bad_speculative_input_is_one_line(capsys, tiny_dir):
    source, other_size, other_tokens = map(str, tiny_dir)
    for spec, needle in [(["--speculative", other_size], "vocabulary of 280"),
                         (["--speculative", other_tokens], "another tokenizer"), (["--speculative", "layers:4"], "1 to 3"),
                         (["--speculative", "prompt-lookup", "--draft-tokens", "0"], "draft"),
                         (["--draft-tokens", "3"], "--speculative")]:
        code, out, err = _cli(capsys, "generate", source, "--prompt", "Hi", *spec)
        assert code == 2 and out == "", err
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err


# --- the real model ---------------------------------------------------------------------------------------------


def test_smollm2_greedy_is_unchanged_and_prompt_lookup_accepts():
    try:
        model, tokenizer = llmzoo.load("smollm2-135m-instruct"), llmzoo.load_tokenizer("smollm2-135m-instruct")
    except AssetMissingError as e:
        pytest.skip(str(e))
    prompt = ("Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday. "
              "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday. Monday,")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContextLengthWarning)
        plain = llmzoo.generate(model, tokenizer, prompt, max_new_tokens=32)
        stats = SpeculativeStats()
        ours = llmzoo.generate(model, tokenizer, prompt, max_new_tokens=32, speculative="prompt-lookup",
                               speculative_stats=stats)
    assert ours == plain
    assert stats.new_tokens == 32 and stats.accepted > 0 and stats.target_forwards < 32
