"""Continuous batching (llmzoo.Engine): requests joining and leaving the running batch at different
steps, with mixed lengths, get exactly what each gets decoded alone."""

import threading

import pytest
import torch

import llmzoo
from llmzoo.errors import LlmzooError
from llmzoo.infer.engine import EngineFullError
from llmzoo.infer.generate import generate_ids
from llmzoo.tokenizer.train import train_tokenizer
from tests.infer.test_generate import BASE, _model

TEXT = "the quick brown fox jumps over the lazy dog and the cat sat on the mat by the door\n"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "text.txt"
    corpus.write_text(TEXT * 20)
    return train_tokenizer([corpus], kind="wordpiece", vocab_size=97, progress=False)


@pytest.fixture(scope="module")
def model():
    return _model(BASE.replace(max_seq_len=128, sliding_window=None))


PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [20, 21], [30, 31, 32, 33, 34], list(range(40, 80)), [3]]


def alone(model, prompt, n):
    return generate_ids(model, [prompt], max_new_tokens=n, compile=False)[0].token_ids


@pytest.mark.parametrize("compile", [False, True])
def test_continuous_batching_equals_each_request_alone(model, tokenizer, compile):
    lengths = [12, 5, 20, 7, 16]
    with llmzoo.Engine(model, tokenizer, max_batch=2, prefill_chunk=16, compile=compile) as engine:
        engine.eos = set()  # a random model: let every request run to its length
        requests = []
        for prompt, n in zip(PROMPTS, lengths):  # five requests through two rows: they queue, join, leave
            requests.append(engine.submit(prompt, max_tokens=n))
        results = [r.result() for r in requests]
    for prompt, n, result in zip(PROMPTS, lengths, results):
        assert result.token_ids == alone(model, prompt, n)
        assert result.finish_reason == "length"


def test_eager_steps_read_only_the_filled_slots_and_decode_the_same(tokenizer):
    """An engine with a long context (1024 slots) attends over the filled slots only, rounded up to a
    power of two from SLOT_BUCKET: requests whose lengths cross 128 and 256 mid-generation, rows
    freed and reused, still decode exactly as alone."""
    from llmzoo.infer import engine as engine_module

    model = _model(BASE.replace(max_seq_len=1024, sliding_window=None))
    prompts = [[t % 90 + 3 for t in range(120)], [20, 21], list(range(3, 60)) * 4, [7, 8, 9]]
    lengths = [40, 150, 30, 12]
    seen = []
    real_rows = engine_module.StaticCache.rows

    def recording_rows(cache, start, end, slots=None):
        seen.append(slots)
        return real_rows(cache, start, end, slots)

    with llmzoo.Engine(model, tokenizer, max_batch=2, prefill_chunk=64, max_len=1024, compile=False) as engine:
        engine.eos = set()
        engine_module.StaticCache.rows = recording_rows
        try:
            results = [r.result() for r in [engine.submit(p, max_tokens=n) for p, n in zip(prompts, lengths)]]
        finally:
            engine_module.StaticCache.rows = real_rows
    for prompt, n, result in zip(prompts, lengths, results):
        assert result.token_ids == alone(model, prompt, n)
    assert {128, 256, 512} <= set(seen) and None not in seen  # windows grew with the rows, never all 1024


def test_requests_arriving_while_others_decode(model, tokenizer):
    with llmzoo.Engine(model, tokenizer, max_batch=4, prefill_chunk=4, compile=False) as engine:
        engine.eos = set()
        first = engine.submit(PROMPTS[0], max_tokens=30)
        chunks = iter(first)
        got = [next(chunks) for _ in range(5)]  # the first request is decoding
        late = [engine.submit(p, max_tokens=9) for p in PROMPTS[1:4]]  # these join mid-generation
        got.extend(chunks)
        assert sum((c.token_ids for c in got), []) == first.token_ids == alone(model, PROMPTS[0], 30)
        for prompt, request in zip(PROMPTS[1:4], late):
            assert request.result().token_ids == alone(model, prompt, 9)


def test_stop_strings_seeds_and_cancellation(model, tokenizer):
    with llmzoo.Engine(model, tokenizer, max_batch=2, compile=False) as engine:
        engine.eos = set()
        plain = engine.generate(PROMPTS[0], max_tokens=20)
        stop = plain.text[3:6]
        stopped = engine.generate(PROMPTS[0], max_tokens=20, stop=[stop])
        assert stopped.text == plain.text[:plain.text.index(stop)] and stopped.finish_reason == "stop"
        a, b = (engine.generate(PROMPTS[2], max_tokens=10, temperature=1.0, seed=7) for _ in range(2))
        assert a.token_ids == b.token_ids  # the request's own seed, whatever else runs
        long = engine.submit(PROMPTS[1], max_tokens=100)
        next(iter(long))
        long.cancel()
        assert long.result().finish_reason == "cancelled"
        again = engine.generate(PROMPTS[1], max_tokens=6)  # the freed row serves the next request
        assert again.token_ids == alone(model, PROMPTS[1], 6)


def test_bad_requests_and_a_full_queue(model, tokenizer):
    with llmzoo.Engine(model, tokenizer, max_batch=1, max_queue=1, compile=False) as engine:
        with pytest.raises(LlmzooError, match="does not fit"):
            engine.submit(list(range(1, 90)) * 2)
        with pytest.raises(LlmzooError, match="empty"):
            engine.submit([])
        with pytest.raises(LlmzooError, match="token ids"):
            engine.submit([10**6])
        engine.eos = set()
        gate = threading.Event()
        step = engine.step
        engine.step = lambda: (gate.wait(), step())  # hold the engine so the queue fills
        try:
            held = [engine.submit(PROMPTS[0], max_tokens=5), engine.submit(PROMPTS[1], max_tokens=5)]  # a row + the queue
            with pytest.raises(EngineFullError, match="retry later"):
                engine.submit(PROMPTS[2], max_tokens=5)
        finally:
            gate.set()
        assert [r.result().token_ids for r in held] == [alone(model, p, 5) for p in PROMPTS[:2]]


def test_chat_messages_and_text_prompts(model, tokenizer):
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    with llmzoo.Engine(model, tokenizer, max_batch=2, compile=False) as engine:
        chat = engine.generate([{"role": "user", "content": "the cat"}], max_tokens=4)
        rendered = engine.generate(tokenizer.encode("the cat ", add_special_tokens=False), max_tokens=4)
        text = engine.generate("the cat", max_tokens=4)
    assert chat.prompt_tokens > 0 and chat.token_ids == rendered.token_ids
    assert text.prompt_tokens == len(tokenizer.encode("the cat"))


def test_one_requests_failure_ends_that_request_only(model, tokenizer):
    with llmzoo.Engine(model, tokenizer, max_batch=2, compile=False) as engine:
        engine.eos = set()
        good = engine.submit(PROMPTS[0], max_tokens=12)
        gate = threading.Event()
        step = engine.step
        engine.step = lambda: (gate.wait(), step())  # hold the engine while the request is tampered with
        bad = engine.submit(PROMPTS[1], max_tokens=12, temperature=1.0)
        object.__setattr__(bad.sampling, "temperature", float("nan"))  # a value that slipped past the checks
        gate.set()
        with pytest.raises(LlmzooError, match="sampling failed for this request"):
            bad.result()
        assert good.result().token_ids == alone(model, PROMPTS[0], 12)
        assert engine.generate(PROMPTS[2], max_tokens=4).token_ids == alone(model, PROMPTS[2], 4)  # still serving
