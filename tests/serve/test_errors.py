"""Every client mistake gets its HTTP status and OpenAI's error shape, never a 500, and the server
keeps answering; a full engine answers 429; a client that hangs up mid-stream frees its row."""

import http.client as httpclient
import json
import time
import urllib.parse

import openai
import pytest

from tests.serve.conftest import http, serve

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "the garden"}], "max_tokens": 4, "temperature": 0}
KEY = {"Authorization": "Bearer sekret"}


def assert_error(status_body, status, *words, param=None):
    got, body = status_body
    assert got == status, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)
    for word in words:
        assert word in error["message"], error["message"]
    if param is not None:
        assert error["param"] == param


BAD = [  # (path, body, status, words in the message, param)
    ("/chat/completions", {**CHAT, "model": "nope"}, 404, ["nope", "tiny"], "model"),
    ("/chat/completions", {k: v for k, v in CHAT.items() if k != "messages"}, 400, ["messages"], "messages"),
    ("/chat/completions", {**CHAT, "messages": []}, 400, ["messages"], "messages"),
    ("/chat/completions", {**CHAT, "temperature": 7}, 400, ["temperature"], "temperature"),
    ("/chat/completions", {**CHAT, "max_tokens": 0}, 400, ["max_tokens"], "max_tokens"),
    ("/chat/completions", {**CHAT, "n": 0}, 400, ["n"], "n"),
    ("/chat/completions", {**CHAT, "stop": 3}, 400, ["stop"], None),
    ("/chat/completions", {**CHAT, "messages": [{"role": "wizard", "content": "x"}]}, 400, ["role"], None),
    ("/chat/completions", {**CHAT, "bogus": 1}, 400, ["unrecognized", "bogus"], "bogus"),
    ("/chat/completions", {**CHAT, "presence_penalty": 2.5}, 400, ["presence_penalty"], "presence_penalty"),
    ("/chat/completions", {**CHAT, "top_logprobs": 2}, 400, ["logprobs"], "top_logprobs"),
    ("/chat/completions", {**CHAT, "logprobs": True, "top_logprobs": 21}, 400, ["top_logprobs"], "top_logprobs"),
    ("/chat/completions", {**CHAT, "response_format": {"type": "json_object"}}, 400, ["response_format"],
     "response_format"),
    ("/chat/completions", {**CHAT, "stream_options": {"include_usage": True}}, 400, ["stream"], "stream_options"),
    ("/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "the garden " * 200}]}, 400,
     ["does not fit", "context"], None),
    # values that would overflow torch or float32 inside the engine thread
    ("/completions", {"model": "tiny", "prompt": "x", "seed": 10 ** 30}, 400, ["seed"], "seed"),
    ("/completions", {"model": "tiny", "prompt": "x", "temperature": 1e-40}, 400, ["temperature"], "temperature"),
    ("/completions", {"model": "tiny", "prompt": "x", "repetition_penalty": 1e-300}, 400, ["repetition_penalty"],
     "repetition_penalty"),
    ("/completions", {"model": "tiny", "prompt": [], "max_tokens": 3}, 400, ["prompt"], "prompt"),
    ("/completions", {"model": "tiny", "prompt": [5, 99999], "max_tokens": 3}, 400, ["vocabulary"], None),
    ("/completions", {"model": "tiny", "prompt": "x", "max_tokens": 0}, 400, ["max_tokens", "echo"], "max_tokens"),
    ("/completions", {"model": "tiny", "prompt": "x", "logit_bias": {"the": 5}}, 400, ["token ids"], "logit_bias"),
    ("/completions", {"model": "tiny", "prompt": "x", "logit_bias": {"99999": 5}}, 400, ["vocabulary"], "logit_bias"),
    ("/chat/completions", {**CHAT, "logit_bias": {"5": 101}}, 400, ["100"], None),
    ("/embeddings", {"model": "tiny", "input": "the garden"}, 400, ["decoder", "encoder"], "model"),
]


@pytest.mark.parametrize("path, body, status, words, param", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_request_gets_its_status_and_the_openai_shape(tiny_server, path, body, status, words, param):
    assert_error(http("POST", tiny_server + path, body, headers=KEY), status, *words, param=param)


def test_invalid_json_unknown_route_and_api_key(tiny_server):
    assert_error(http("POST", tiny_server + "/chat/completions", raw=b'{"model": "tiny",', headers=KEY), 400, "JSON")
    assert_error(http("GET", tiny_server + "/nothing", headers=KEY), 404, "/v1/nothing")
    assert_error(http("POST", tiny_server + "/chat/completions", CHAT), 401, "Authorization")
    assert_error(http("POST", tiny_server + "/chat/completions", CHAT, headers={"Authorization": "Bearer wrong"}),
                 401, "incorrect")
    assert http("GET", tiny_server.removesuffix("/v1") + "/health")[0] == 200  # no key needed to probe liveness


def test_the_openai_client_raises_its_typed_errors_and_the_server_still_answers(tiny_server, client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=CHAT["messages"])
    with pytest.raises(openai.BadRequestError, match="frequency_penalty"):
        client.chat.completions.create(model="tiny", messages=CHAT["messages"], frequency_penalty=3.0)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=tiny_server, api_key="wrong", max_retries=0).models.list()
    reply = client.chat.completions.create(model="tiny", messages=CHAT["messages"], max_tokens=4, temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length")


@pytest.fixture
def one_row_server(tiny_dir):
    """One engine row and no queue, each step slowed so a stream is still running when its client leaves."""
    from llmzoo.serve import create_app, load_served
    from tests.serve.conftest import running

    served = load_served(str(tiny_dir), max_batch=1, max_queue=0, compile=False)
    engine, submitted = served.engine, []
    real_submit, real_step = engine.submit, engine.step

    def submit(*args, **kwargs):
        submitted.append(real_submit(*args, **kwargs))
        return submitted[-1]

    def slow_step():
        time.sleep(0.02)
        real_step()

    engine.submit, engine.step = submit, slow_step
    with running(create_app({"tiny": served})) as url:
        yield url, submitted


def test_a_full_engine_answers_429_and_a_client_that_hangs_up_frees_its_row(one_row_server):
    url, submitted = one_row_server
    parts = urllib.parse.urlsplit(url)
    connection = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", "/v1/completions", json.dumps({"model": "tiny", "prompt": "the garden", "stream": True,
                                                              "max_tokens": 100, "temperature": 0}),
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")  # the stream is running in the only row
    busy = {"model": "tiny", "prompt": "the old mill", "max_tokens": 3}
    assert_error(http("POST", url + "/completions", busy), 429, "full")
    connection.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 30
    while (answer := http("POST", url + "/completions", busy))[0] == 429 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert answer[0] == 200, answer
    assert submitted[0].finish_reason == "cancelled" and len(submitted[0].token_ids) < 100


def test_a_client_that_hangs_up_before_a_whole_response_frees_its_row(one_row_server):
    url, submitted = one_row_server
    parts = urllib.parse.urlsplit(url)
    connection = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", "/v1/completions", json.dumps({"model": "tiny", "prompt": "the garden",
                                                              "max_tokens": 100, "temperature": 0}),
                       {"Content-Type": "application/json"})
    deadline = time.monotonic() + 30
    while not submitted and time.monotonic() < deadline:
        time.sleep(0.01)
    connection.close()  # gone before the completion is ready
    busy = {"model": "tiny", "prompt": "the old mill", "max_tokens": 3}
    while (answer := http("POST", url + "/completions", busy))[0] == 429 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert answer[0] == 200, answer
    assert submitted[0].finish_reason == "cancelled" and len(submitted[0].token_ids) < 100


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the engine thread's own raise
def test_an_engine_that_dies_fails_its_requests_and_the_server_says_so(tiny_dir):
    """A bug inside the engine thread (here a step that raises) is a 500 for the requests it held and a
    503 afterwards, from /health too: never a request left hanging on a dead engine."""
    from llmzoo.serve import create_app, load_served
    from tests.serve.conftest import running

    served = load_served(str(tiny_dir), max_batch=1, max_queue=0, compile=False)

    def broken_step():
        raise RuntimeError("simulated engine bug")

    served.engine.step = broken_step
    with running(create_app({"tiny": served})) as url:
        body = {"model": "tiny", "prompt": "the garden", "max_tokens": 3}
        assert_error(http("POST", url + "/completions", body), 500, "simulated engine bug")
        assert_error(http("POST", url + "/completions", body), 503, "restart")
        assert http("GET", url.removesuffix("/v1") + "/health")[0] == 503
