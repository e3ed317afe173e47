"""Graceful shutdown: a stream in flight when the server is told to stop still ends with [DONE],
then the engines are closed (the app's lifespan)."""

import json
import threading
import time
import urllib.request

from llmzoo.serve import create_app, load_served
from tests.serve.conftest import running


def test_shutdown_lets_a_running_stream_finish_then_closes_the_engine(tiny_dir):
    served = load_served(str(tiny_dir), max_batch=1, max_queue=0, compile=False)
    real_step = served.engine.step

    def slow_step():  # ~40 tokens x 20 ms: the stream is still running when shutdown begins
        time.sleep(0.02)
        real_step()

    served.engine.step = slow_step
    lines, started = [], threading.Event()
    with running(create_app({"tiny": served})) as url:
        def client():
            body = json.dumps({"model": "tiny", "prompt": "the garden", "max_tokens": 40, "temperature": 0,
                               "stream": True}).encode()
            request = urllib.request.Request(url + "/completions", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                for line in response:
                    started.set()
                    lines.append(line.decode().strip())

        thread = threading.Thread(target=client)
        thread.start()
        assert started.wait(30)
    thread.join(60)  # the server has stopped: the context manager waited for it
    assert [line for line in lines if line][-1] == "data: [DONE]"
    assert served.engine._closed and all(row is None for row in served.engine.rows)
