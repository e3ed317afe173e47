"""A bounded fuzz of the API: valid bodies with fields dropped, replaced by values of every JSON type,
or added, and raw bytes; the server answers every one without a 5xx and keeps serving. Seeded, so a
failure reproduces (schemathesis is not a dependency; the mutations cover the same ground cheaply)."""

import json
import random

from tests.serve.conftest import http

KEY = {"Authorization": "Bearer sekret"}
VALID = {
    "/chat/completions": {"model": "tiny", "messages": [{"role": "user", "content": "the garden"}], "max_tokens": 3,
                          "temperature": 0.5, "top_p": 0.9, "n": 2, "stop": ["x"], "seed": 1, "stream": False,
                          "logprobs": True, "top_logprobs": 1},
    "/completions": {"model": "tiny", "prompt": "the garden", "max_tokens": 3, "echo": True, "stop": "x",
                     "stream": True, "stream_options": {"include_usage": True}},
    "/embeddings": {"model": "tiny", "input": ["a", "b"], "encoding_format": "float"},
}
VALUES = [None, True, False, 0, -1, 1, 3, 2.5, -0.5, 1e300, 1e-300, 1e-40, 10 ** 30, -(10 ** 30),
          "", "x", "tiny", "\x00\ud7ff", [], [1, 2],
          [[3]], ["a", 1], [{"role": "user", "content": 5}], [{"role": "user"}], {}, {"type": "text"},
          {"include_usage": "yes"}, [{"type": "text", "text": "hi"}]]


def mutate(rng: random.Random, body: dict) -> dict:
    body = json.loads(json.dumps(body))
    for _ in range(rng.randint(1, 3)):
        action = rng.random()
        if action < 0.3 and body:
            body.pop(rng.choice(sorted(body)))
        elif action < 0.9 and body:
            body[rng.choice(sorted(body))] = rng.choice(VALUES)
        else:
            body[rng.choice(["extra", "top_k", "repetition_penalty", "max_completion_tokens", "dimensions", "seed",
                         "temperature", "top_p"])] = \
                rng.choice(VALUES)
    return body


def test_no_request_gets_a_5xx(tiny_server):
    rng = random.Random(0)
    statuses = []
    for i in range(240):
        path = rng.choice(sorted(VALID))
        if i % 20 == 0:
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
            status, body = http("POST", tiny_server + path, headers=KEY, raw=raw)
        else:
            status, body = http("POST", tiny_server + path, mutate(rng, VALID[path]), headers=KEY)
        assert status < 500, (path, status, body)
        if status >= 400:
            assert set(body["error"]) == {"message", "type", "param", "code"}, body
        statuses.append(status)
    assert {200, 400} <= set(statuses)
    assert http("POST", tiny_server + "/chat/completions", VALID["/chat/completions"], headers=KEY)[0] == 200
