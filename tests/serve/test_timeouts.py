"""--request-timeout and --idle-timeout with tiny values, on a scripted engine that replies slowly:
the request is cancelled (its engine request ends "cancelled", the slot is free again), the client
gets a clear error, and the server goes on answering."""

import asyncio
import time

import openai
import pytest

import llmzoo
from llmzoo.serve import create_app
from llmzoo.serve.models import ServedModel
from tests.serve.conftest import running
from tests.serve.fake_engine import ScriptedEngine

SLOW = "the river flows " * 2000


@pytest.fixture
def server(tiny_dir):
    def start(**timeouts):
        engine = ScriptedEngine(llmzoo.load_tokenizer(tiny_dir), [SLOW], delay=0.01)
        served = {"tiny": ServedModel("tiny", None, engine.tokenizer, engine=engine)}
        return running(create_app(served, **timeouts)), engine
    return start


def wait_until_freed(engine, seconds=30):
    deadline = time.monotonic() + seconds
    while (not engine.requests or engine.active) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.requests and not engine.active and all(r.finish_reason == "cancelled" for r in engine.requests)


def test_request_timeout_cancels_and_answers_504_then_serves_on(server):
    context, engine = server(request_timeout=0.3)
    with context as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=30)
        with pytest.raises(openai.APIStatusError) as caught:
            client.completions.create(model="tiny", prompt="x", max_tokens=5000)
        assert caught.value.status_code == 504 and "request timeout of 0.3 s" in caught.value.message
        with pytest.raises(openai.APIError, match="request timeout"):
            for _ in client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                                    max_tokens=5000, stream=True):
                pass
        wait_until_freed(engine)
        engine.reply("quick")
        engine.delay = 0
        assert client.completions.create(model="tiny", prompt="x", max_tokens=50).choices[0].text == "quick"


def stream_to(send, idle_timeout):
    """Run an SSE response of three chunks against `send`; returns the chunks' bodies sent and
    whether on_idle was called."""
    from llmzoo.serve.streaming import IdleTimeoutStreamingResponse

    idle = []

    async def chunks():
        for i in range(3):
            yield f"data: {i}\n\n".encode()

    async def never():  # the client sends nothing more
        await asyncio.Event().wait()

    response = IdleTimeoutStreamingResponse(chunks(), idle_timeout=idle_timeout, on_idle=lambda: idle.append(1),
                                            media_type="text/event-stream")
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [],
             "asgi": {"version": "3.0", "spec_version": "2.4"}}
    asyncio.run(asyncio.wait_for(response(scope, never, send), 30))
    return bool(idle)


def test_a_streaming_client_that_stops_reading_is_dropped():
    # uvicorn's send waits while the socket's buffers are full (its flow control): a client that
    # reads nothing is a send that never returns
    bodies = []

    async def stalled(message):
        if message["type"] == "http.response.body" and message.get("body"):
            bodies.append(message["body"])
            if len(bodies) == 2:
                await asyncio.Event().wait()

    assert stream_to(stalled, 0.05) and bodies == [b"data: 0\n\n", b"data: 1\n\n"]
    bodies.clear()

    async def reading(message):
        if message["type"] == "http.response.body" and message.get("body"):
            bodies.append(message["body"])

    assert not stream_to(reading, 0.05) and len(bodies) == 3


def test_idle_and_request_timeouts_are_flags_of_llmzoo_serve(capsys):
    from llmzoo.cli import main

    assert main(["serve", "x", "--request-timeout", "0"]) == 2
    assert main(["serve", "x", "--idle-timeout", "-1"]) == 2
    assert capsys.readouterr().err.count("positive number of seconds") == 2


def test_a_bad_rag_index_is_one_line_before_any_model_loads(tmp_path, capsys):
    from llmzoo.cli import main

    assert main(["serve", "smollm2-135m-instruct", "--port", "0", "--rag-index", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a RAG index" in err[0]
