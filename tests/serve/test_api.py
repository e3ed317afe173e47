"""The OpenAI API through the official `openai` client against a live server on a tiny random
decoder: every answer equals what llmzoo's own generate gives for the same prompt."""

import threading
import time

import pytest
import torch

import llmzoo
from tests.serve.conftest import http

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the garden river"}]
PROMPT = "the children play by the"


@pytest.fixture(scope="module")
def local(tiny_dir):
    return llmzoo.load(tiny_dir), llmzoo.load_tokenizer(tiny_dir)


def expected_chat(local, n):
    model, tokenizer = local
    return llmzoo.generate(model, tokenizer, "the garden river", chat=True, system="be brief", max_new_tokens=n,
                           compile=False)


def expected_text(local, prompt, n, **kw):
    model, tokenizer = local
    return llmzoo.generate(model, tokenizer, prompt, max_new_tokens=n, compile=False, **kw)


def test_models_lists_the_directory_name(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_chat_equals_llmzoo_generate_and_counts_usage(client, local):
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_tokens=12)
    assert reply.choices[0].message.content == expected_chat(local, 12)
    assert reply.choices[0].message.role == "assistant"
    _, tokenizer = local
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)
    assert reply.usage.prompt_tokens == len(tokenizer.encode(prompt, add_special_tokens=False))
    assert 1 <= reply.usage.completion_tokens <= 12


def test_streamed_chat_deltas_concatenate_to_the_whole_reply(client):
    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_completion_tokens=15)
    stream = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_completion_tokens=15,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_completions_with_echo_token_prompts_and_streaming(client, local):
    _, tokenizer = local
    want = expected_text(local, PROMPT, 10)
    plain = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=10, temperature=0)
    assert plain.choices[0].text == want
    echoed = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=10, temperature=0, echo=True)
    assert echoed.choices[0].text == PROMPT + want
    ids = tokenizer.encode(PROMPT)
    assert client.completions.create(model="tiny", prompt=ids, max_tokens=10, temperature=0).choices[0].text == want
    streamed = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=10, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == want
    two = client.completions.create(model="tiny", prompt=[PROMPT, "the old mill"], max_tokens=6, temperature=0)
    assert [c.text for c in two.choices] == [expected_text(local, PROMPT, 6), expected_text(local, "the old mill", 6)]
    assert [c.index for c in two.choices] == [0, 1]


def test_stop_strings_cut_the_text_before_them(client, local):
    plain = expected_text(local, PROMPT, 20)
    stop = plain[4:7]
    assert stop.strip() and stop in plain
    for kind in (stop, [stop, "\x00never"]):
        reply = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=20, temperature=0, stop=kind)
        assert reply.choices[0].text == plain[:plain.index(stop)] and reply.choices[0].finish_reason == "stop"


def test_seeds_reproduce_and_n_gives_n_samples(client, local):
    def sample(**kw):
        reply = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=1.0, top_p=0.9, **kw)
        return [c.text for c in reply.choices]

    first = sample(seed=11, n=3)
    assert sample(seed=11, n=3) == first and len(first) == 3
    assert len(set(first)) > 1  # seeds 11, 12, 13: different samples
    assert sample(seed=12) == [first[1]]  # choice i is seeded seed + i
    assert first[0] == expected_text(local, PROMPT, 12, temperature=1.0, top_p=0.9, seed=11)
    greedy = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_tokens=8, n=2)
    assert [c.index for c in greedy.choices] == [0, 1]
    assert greedy.choices[0].message.content == greedy.choices[1].message.content == expected_chat(local, 8)


def test_sixteen_concurrent_streams_get_their_text_alone(client, local):
    prompts = [f"the {w} river" for w in ("garden", "old", "summer", "mill")] * 4
    want = {p: expected_text(local, p, 16) for p in set(prompts)}
    got = [None] * len(prompts)

    def run(i):
        stream = client.completions.create(model="tiny", prompt=prompts[i], max_tokens=16, temperature=0, stream=True)
        got[i] = "".join(c.choices[0].text for c in stream)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == [want[p] for p in prompts]


def test_health_and_metrics(tiny_server, client):
    client.completions.create(model="tiny", prompt=PROMPT, max_tokens=3, temperature=0, stream=True).close()
    base = tiny_server.removesuffix("/v1")
    assert http("GET", f"{base}/health") == (200, {"status": "ok", "models": ["tiny"]})
    deadline = time.monotonic() + 30  # the closed stream's request leaves the queue at the engine's next step
    while 'llmzoo_queue_depth{model="tiny"} 0' not in (text := http("GET", f"{base}/metrics")[1]):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    assert 'llmzoo_requests_total{route="/v1/completions",status="200"}' in text
    assert 'llmzoo_completion_tokens_total{model="tiny"}' in text
    assert 'llmzoo_queue_depth{model="tiny"} 0' in text
    assert 'llmzoo_time_to_first_token_seconds_count{model="tiny"}' in text


def test_logprobs_equal_the_models_own_log_softmax(client, local):
    from llmzoo.infer.generate import generate_ids

    model, tokenizer = local
    prompt_ids = tokenizer.encode(PROMPT)
    reply = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3)
    got = reply.choices[0].logprobs
    ids = generate_ids(model, [prompt_ids], max_new_tokens=8, compile=False)[0].token_ids[:len(got.tokens)]
    with torch.no_grad():  # teacher-forced: one forward over prompt + completion, no cache
        logp = model(torch.tensor([prompt_ids + ids])).logits[0].float().log_softmax(-1)[len(prompt_ids) - 1:-1]
    assert got.tokens == [tokenizer.decode([t]) for t in ids] and len(ids) >= 1
    torch.testing.assert_close(torch.tensor(got.token_logprobs), logp[torch.arange(len(ids)), ids],
                               atol=1e-4, rtol=1e-4)
    for position, top in enumerate(got.top_logprobs):  # {token text: logprob}: byte pieces may share a text
        values, indices = logp[position].topk(3)
        texts = [tokenizer.decode([t]) for t in indices.tolist()]
        assert set(top) == set(texts)
        for text, value in top.items():
            assert value == pytest.approx(max(v for t, v in zip(texts, values.tolist()) if t == text), abs=1e-4)

    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_tokens=10,
                                           logprobs=True, top_logprobs=2)
    streamed = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_tokens=10,
                                              logprobs=True, top_logprobs=2, stream=True)
    pieces = [t for c in streamed if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    content = whole.choices[0].logprobs.content
    assert [t.token for t in pieces] == [t.token for t in content] and len(content) == whole.usage.completion_tokens
    assert [t.logprob for t in pieces] == pytest.approx([t.logprob for t in content], abs=1e-5)
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob == pytest.approx(t.logprob) for t in content)


def test_presence_and_frequency_penalties_follow_openais_formula(client, local):
    """Greedy decoding by hand, no cache: logit[j] -= frequency * count[j] + presence * (count[j] > 0)
    over the tokens generated so far (OpenAI's documented penalties)."""
    model, tokenizer = local
    ids = tokenizer.encode(PROMPT)
    texts = []
    for presence, frequency in ((0.0, 1.5), (2.0, 0.0), (-0.5, 0.7)):
        counts, new = torch.zeros(model.config.vocab_size), []
        with torch.no_grad():
            for _ in range(12):
                logits = model(torch.tensor([ids + new])).logits[0, -1].float()
                token = int((logits - frequency * counts - presence * (counts > 0).float()).argmax())
                if token in tokenizer.stop_token_ids or token == tokenizer.eos_token_id:
                    break
                new.append(token)
                counts[token] += 1
        reply = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=0,
                                          presence_penalty=presence, frequency_penalty=frequency)
        assert reply.choices[0].text == tokenizer.decode(new, skip_special_tokens=True)
        texts.append(reply.choices[0].text)
    plain = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=0).choices[0].text
    assert any(text != plain for text in texts)  # the penalties do change the greedy text


def greedy_by_hand(model, tokenizer, ids, steps, adjust):
    """Greedy decoding without a cache, `adjust(logits)` applied before each argmax."""
    new = []
    with torch.no_grad():
        for _ in range(steps):
            token = int(adjust(model(torch.tensor([ids + new])).logits[0, -1].float()).argmax())
            if token in tokenizer.stop_token_ids or token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new)


def test_logit_bias_is_added_to_the_logits_before_sampling(client, local):
    """OpenAI's logit_bias: {token id: bias} added to the logits; -100 bans a token, +100 forces it."""
    model, tokenizer = local
    ids = tokenizer.encode(PROMPT)
    first = model(torch.tensor([ids])).logits[0, -1].argmax().item()
    for bias in ({first: -100.0}, {first: -100.0, 7: 3.5, 11: 100.0}):
        def adjust(logits, bias=bias):
            for token, value in bias.items():
                logits[token] += value
            return logits

        want = greedy_by_hand(model, tokenizer, ids, 8, adjust)
        reply = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=8, temperature=0,
                                          logit_bias={str(t): v for t, v in bias.items()})
        assert reply.choices[0].text == want
    assert tokenizer.encode(want) and set(tokenizer.encode(want)) == {11}  # +100 wins every step
    chat = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=4, temperature=0,
                                          logit_bias={"11": 100})
    assert chat.choices[0].message.content == tokenizer.decode([11] * 4)


def test_echo_with_logprobs_scores_the_prompt_as_a_forward_does(client, local):
    """echo + logprobs (what lm-eval's OpenAI backend asks for to score a text): the prompt's tokens
    with their teacher-forced log-probabilities, null for the first; max_tokens=0 generates nothing."""
    model, tokenizer = local
    ids = tokenizer.encode(PROMPT)
    with torch.no_grad():
        logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    scored = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=0, echo=True, logprobs=2)
    got = scored.choices[0]
    assert got.text == PROMPT and scored.usage.completion_tokens == 0
    assert got.logprobs.tokens == [tokenizer.decode([t]) for t in ids]
    assert got.logprobs.token_logprobs[0] is None and got.logprobs.top_logprobs[0] is None
    torch.testing.assert_close(torch.tensor(got.logprobs.token_logprobs[1:]), logp[torch.arange(len(ids) - 1), ids[1:]],
                               atol=1e-4, rtol=1e-4)
    for position, top in enumerate(got.logprobs.top_logprobs[1:]):
        assert set(top) == {tokenizer.decode([t]) for t in logp[position].topk(2).indices.tolist()}
    assert got.logprobs.text_offset[:2] == [0, len(tokenizer.decode(ids[:1]))]

    plain = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=6, temperature=0, logprobs=1)
    both = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=6, temperature=0, logprobs=1, echo=True)
    lp = both.choices[0].logprobs
    assert both.choices[0].text == PROMPT + plain.choices[0].text
    assert lp.tokens == got.logprobs.tokens + plain.choices[0].logprobs.tokens
    assert lp.token_logprobs[len(ids):] == pytest.approx(plain.choices[0].logprobs.token_logprobs, abs=1e-5)
    assert lp.text_offset[len(ids)] == len(PROMPT)
    streamed = list(client.completions.create(model="tiny", prompt=PROMPT, max_tokens=6, temperature=0, logprobs=1,
                                              echo=True, stream=True))
    assert streamed[0].choices[0].text == PROMPT
    pieces = [t for c in streamed if c.choices[0].logprobs for t in c.choices[0].logprobs.token_logprobs]
    assert pieces[0] is None and pieces[1:] == pytest.approx(lp.token_logprobs[1:], abs=1e-5)
    offsets = [o for c in streamed if c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset]
    assert offsets == lp.text_offset, (offsets, lp.text_offset, len(ids))
