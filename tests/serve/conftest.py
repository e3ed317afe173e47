"""A tiny random decoder (with a chat template) saved as a user's checkpoint directory, and a
server running it in this process on a free loopback port."""

import contextlib
import socket
import threading
import time

import pytest
import uvicorn

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.errors import AssetMissingError
from llmzoo.serve import create_app, load_served
from llmzoo.tokenizer.train import train_tokenizer
from tests.infer.test_generate import _model

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
TEXT = "the garden river flows past the old mill and the children play by the water in the summer\n"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "c.txt"
    corpus.write_text(TEXT * 30, encoding="utf-8")
    tokenizer = train_tokenizer([corpus], vocab_size=300, progress=False)
    tokenizer.chat_template = CHAT_TEMPLATE
    model = _model(ModelConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=128), 3)
    out = tmp_path_factory.mktemp("tiny") / "tiny"
    llmzoo.save(model, out, tokenizer=tokenizer)
    return out


@contextlib.contextmanager
def running(app):
    """Serve `app` on 127.0.0.1:<free port> in a thread; yields the base URL (…/v1)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def serve(directory, *, api_key=None, **engine):
    """Engines decode eagerly in tests (compile=False): seconds, not a compile per test server."""
    served = load_served(str(directory), compile=False, **engine)
    return running(create_app({served.name: served}, api_key=api_key))


@pytest.fixture(scope="module")
def tiny_server(tiny_dir):
    with serve(tiny_dir, max_batch=8, max_queue=32, api_key="sekret") as url:
        yield url


@pytest.fixture(scope="module")
def client(tiny_server):
    import openai

    return openai.OpenAI(base_url=tiny_server, api_key="sekret", max_retries=0, timeout=60)


def http(method, url, body=None, *, headers=None, raw=None):
    """(status, parsed JSON or text) of one plain HTTP request; `raw` sends bytes as they are."""
    import json
    import urllib.error
    import urllib.request

    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.fixture(scope="session")
def smollm2_client():
    """The real SmolLM2-135M-Instruct behind the server (one per test process), through the openai client."""
    import openai

    try:
        served = load_served("smollm2-135m-instruct", max_batch=8, max_queue=16, max_len=1024, compile=False)
    except AssetMissingError as e:
        pytest.skip(str(e))
    with running(create_app({served.name: served})) as url:
        yield openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=300)
