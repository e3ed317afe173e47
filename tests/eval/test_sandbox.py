"""The sandbox for generated code: bad programs are scored and contained, the caller goes on."""

import os
import socket
from pathlib import Path

import pytest

from llmzoo.errors import LlmzooError
from llmzoo.eval.sandbox import Limits, run_program, run_programs

FAST = Limits(timeout_s=5.0)  # programs that end by themselves: room for a loaded machine


def _alive(pid: int) -> bool:
    """A live process (a zombie would count as dead: it runs nothing and holds nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_correct_program_passes_and_wrong_one_fails():
    ok = run_program("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n", FAST)
    assert ok.passed and ok.outcome == "passed"
    bad = run_program("def add(a, b):\n    return a - b\nassert add(2, 3) == 5, 'add is wrong'\n", FAST)
    assert not bad.passed and bad.outcome == "failed"
    assert "AssertionError" in bad.reason and "add is wrong" in bad.reason


def test_syntax_error_and_early_exit_are_failures():
    assert run_program("def f(:\n", FAST).outcome == "failed"
    # leaving before the test has run is not passing it
    for code in ("import os\nos._exit(0)\nassert False\n", "import sys\nsys.exit(0)\nassert False\n"):
        result = run_program(code, FAST)
        assert result.outcome == "failed", (code, result)


def test_infinite_loop_is_killed_by_the_timeout_and_the_caller_goes_on():
    # a program that never ends comes back as timed out (run_program returning at all is the point;
    # no wall-clock assertion, which a loaded CI machine would make flaky)
    looping = run_program("while True:\n    pass\n", Limits(timeout_s=0.5))
    assert looping.outcome == "timed_out" and not looping.passed
    assert run_program("assert 1 + 1 == 2\n", FAST).passed  # the next program runs normally


def test_100_gb_allocation_fails_at_the_memory_cap():
    result = run_program("x = bytearray(100 * 2**30)\n", FAST)
    assert result.outcome == "out_of_memory" and not result.passed
    assert "MemoryError" in result.reason
    # the test process itself can still allocate normally
    assert len(bytearray(10 * 2**20)) == 10 * 2**20


def test_grandchild_that_escapes_the_process_group_does_not_survive():
    # double fork + setsid: the grandchild leaves the program's process group and session
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(1000)\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\n"
        "me = os.getpid()\n"
        "import glob\n"
        "pids = []\n"
        "for stat in glob.glob('/proc/[0-9]*/stat'):\n"
        "    try:\n"
        "        fields = open(stat).read().rsplit(')', 1)[1].split()\n"
        "    except OSError:\n"
        "        continue\n"
        "    if fields[0] != 'Z' and int(fields[3]) != os.getpgrp() and open(stat[:-4] + 'cmdline').read()"
        " == open('/proc/self/cmdline').read():\n"
        "        pids.append(stat.split('/')[2])\n"
        "print('PIDS', ' '.join(pids))\n"
    )
    result = run_program(code, Limits(timeout_s=2.0))
    assert result.passed, result
    line = next(l for l in result.output.splitlines() if l.startswith("PIDS"))
    pids = [int(p) for p in line.split()[1:]]
    assert pids, "the grandchild was not started"
    assert not any(_alive(p) for p in pids)


def test_process_left_running_by_a_timed_out_program_does_not_survive():
    code = ("import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)'], start_new_session=True)\n"
            "print('PID', p.pid, flush=True)\n"
            "while True:\n    pass\n")
    result = run_program(code, Limits(timeout_s=1.0))
    assert result.outcome == "timed_out"
    pid = int(next(l for l in result.output.splitlines() if l.startswith("PID")).split()[1])
    assert not _alive(pid)


def test_fork_bomb_is_stopped_and_leaves_nothing():
    code = ("import os\nprint('CWD', os.getcwd(), flush=True)\n"
            "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    result = run_program(code, Limits(timeout_s=2.0, max_processes=8))
    assert not result.passed
    cwd = next(l for l in result.output.splitlines() if l.startswith("CWD")).split()[1]
    survivors = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cwd.encode() in cmdline.read_bytes() and _alive(int(cmdline.parent.name)):
                survivors.append(cmdline.parent.name)
        except OSError:
            pass
    assert not survivors


def test_network_connection_to_localhost_is_refused():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n"
        result = run_program(code, FAST)
        assert result.outcome == "failed" and not result.passed
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing ever reached the listener
            server.accept()


def test_kernel_refuses_the_network_even_past_the_python_block():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        # socket.SocketType is the C type the socket module wraps: it goes around the Python-level block
        code = f"import socket\ns = socket.SocketType(socket.AF_INET, socket.SOCK_STREAM)\ns.connect(('127.0.0.1', {port}))\n"
        result = run_program(code, FAST)
        if "network namespace" not in result.isolation:
            pytest.skip(f"no network namespace on this machine ({result.isolation}); only the Python block applies")
        assert result.outcome == "failed" and "OSError" in result.reason, result
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()


def test_working_directory_is_a_fresh_temporary_directory():
    code = "import os\nprint('CWD', os.getcwd())\nopen('scratch.txt', 'w').write('x')\nprint(sorted(os.listdir('.')))\n"
    result = run_program(code, FAST)
    assert result.passed, result
    cwd = result.output.split()[1]
    assert cwd != os.getcwd() and not Path(cwd).exists()  # removed afterwards


def test_many_programs_keep_their_order():
    codes = [f"assert {i} % 2 == 0\n" for i in range(4)]
    assert [r.passed for r in run_programs(codes, FAST, workers=2)] == [True, False, True, False]


@pytest.mark.parametrize("bad", [dict(timeout_s=0), dict(timeout_s=float("nan")), dict(memory_bytes=0),
                                 dict(max_processes=-1), dict(cpu_s=0)])
def test_bad_limits_are_one_line_errors(bad):
    with pytest.raises(LlmzooError):
        Limits(**bad)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_as_root_the_program_runs_as_nobody_when_it_can(tmp_path, monkeypatch):
    import llmzoo.eval.sandbox as sandbox

    # pretend the interpreter is readable by others (here it may live under /root, mode 0700);
    # the program imports nothing new, so it runs either way
    monkeypatch.setattr(sandbox, "_world_readable", lambda path: True)
    guarded = tmp_path / "root-owned"
    guarded.mkdir(mode=0o755)
    code = (f"import os\nassert os.getuid() == 65534, os.getuid()\n"
            f"try:\n    open({str(guarded / 'x')!r}, 'w')\nexcept PermissionError:\n    pass\n"
            f"else:\n    raise SystemExit('wrote into a root-owned directory')\n"
            "open('mine.txt', 'w').write('the working directory is writable')\n")
    result = run_program(code, FAST)
    assert result.passed, result
    assert any("dropped from root" in item for item in result.isolation)
    assert not (guarded / "x").exists()
