"""`llmzoo serve` as users start it: a subprocess, ready at /health, answers, and exits 0 on SIGTERM;
a busy port or a bad flag is one line and exit code 2."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai

from llmzoo.cli import main
from tests.serve.conftest import http

LLMZOO = str(Path(sys.executable).with_name("llmzoo"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_subprocess_answers_and_exits_0_on_sigterm(tiny_dir):
    port = free_port()
    env = {**os.environ, "LLMZOO_COMPILE": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([LLMZOO, "serve", str(tiny_dir), "--port", str(port), "--api-key", "k",
                             "--max-concurrent", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if http("GET", f"http://127.0.0.1:{port}/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "llmzoo serve did not come up"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        reply = client.completions.create(model="tiny", prompt="the garden", max_tokens=5, temperature=0)
        assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens >= 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "serving tiny on" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_busy_port_and_bad_flags_are_one_line_exit_2(tiny_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", str(tiny_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"127.0.0.1:{port}" in err and "--port" in err
    assert main(["serve", str(tiny_dir), "--max-concurrent", "0"]) == 2
    assert "--max-concurrent" in capsys.readouterr().err
    assert main(["serve", str(tiny_dir), "--port", str(free_port()), "--max-len", "0"]) == 2
    assert "--max-len" in capsys.readouterr().err
    assert main(["serve", str(tiny_dir / "missing"), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing" in err
    assert main(["serve", str(tiny_dir), str(tiny_dir), "--port", str(free_port())]) == 2
    assert "same name" in capsys.readouterr().err
