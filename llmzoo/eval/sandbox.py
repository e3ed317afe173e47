"""Run untrusted generated code (HumanEval completions) so that it cannot hang, exhaust or reach out.

`run_program(code)` writes the code into a fresh temporary directory and runs it in a new
interpreter (`sys.executable -I`: no PYTHONPATH, no user site, no current directory on the
path) under a small supervisor (llmzoo/eval/sandbox_child.py). The result says whether it
`passed` (ran to its end: for HumanEval, `check(entry_point)` raised nothing), `failed`
(an exception, a SystemExit, a syntax error), `timed_out` (wall clock or CPU time),
`out_of_memory` (MemoryError at the address-space cap) or was `killed` by a signal, with
the reason. A bad program never raises in the caller; the caller goes on.

What is isolated, and what is not (honestly; Linux, where each protection that the kernel
refuses is left out and named in `SandboxResult.isolation`):
  * Time: a wall-clock timeout (the supervisor kills the program's process group) plus
    RLIMIT_CPU. Nothing the program started survives: the supervisor is a child subreaper,
    so even processes that double-fork or call setsid() are re-parented to it and killed.
  * Memory and processes: RLIMIT_AS caps the address space (a 100 GB allocation fails
    at once), RLIMIT_FSIZE and RLIMIT_NOFILE bound files, no core dumps, no new privileges
    (setuid binaries gain nothing). Limits are per process: several processes may each use
    the cap. A fork bomb is bounded by RLIMIT_NPROC, which the kernel never applies to root:
    a program left running as root is frozen and killed by the supervisor instead once it
    has more than `max_processes` processes (it watches the machine's thread count).
  * Network: where the kernel allows unprivileged user namespaces, the program runs in a
    new network namespace (only a loopback that is down: nothing, 127.0.0.1 included, is
    reachable). In addition the `socket`/`_socket` constructors are replaced by ones that
    raise. Without the namespace only that Python-level block remains, which ctypes or a
    C extension could get around; `SandboxResult.isolation` says which applied.
    Unix-domain sockets on the filesystem are outside any network namespace.
  * Files: the working directory is a fresh temporary directory (removed afterwards), but
    the filesystem is NOT isolated: the program can read and write whatever its uid can.
    When the caller is root and the interpreter is readable by others, the program runs
    as `nobody`; otherwise as the caller's own user. Prefer running evaluations as an
    unprivileged user, or inside a container, for code you do not trust at all.
  * Scoring: a program that exits early (`sys.exit(0)`, `os._exit(0)`) is `failed`, not
    `passed`; but code running in the same process as its test can still tamper with the
    test itself. The sandbox protects the machine, not the score from adversarial code.
"""

from __future__ import annotations

import json
import math
import os
import pwd
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from llmzoo.errors import LlmzooError

OUTCOMES = ("passed", "failed", "timed_out", "out_of_memory", "killed")
_CHILD = Path(__file__).with_name("sandbox_child.py")
_OUTPUT_TAIL = 2000


@dataclass(frozen=True)
class Limits:
    """Per-program limits. HumanEval's reference harness uses a 3 s timeout (Chen et al. 2021)."""

    timeout_s: float = 3.0
    memory_bytes: int = 1 << 30  # address space, not resident memory: leave room for the interpreter
    cpu_s: int | None = None  # default: the timeout rounded up, plus one second
    file_size_bytes: int = 16 << 20
    max_processes: int = 16
    open_files: int = 128

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise LlmzooError(f"sandbox timeout must be a positive number of seconds, got {self.timeout_s!r}")
        for name in ("memory_bytes", "file_size_bytes", "max_processes", "open_files"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LlmzooError(f"sandbox limit {name} must be a positive integer, got {value!r}")
        if self.cpu_s is not None and (not isinstance(self.cpu_s, int) or self.cpu_s < 1):
            raise LlmzooError(f"sandbox limit cpu_s must be a positive integer, got {self.cpu_s!r}")

    def as_config(self) -> dict:
        return {
            "timeout_s": float(self.timeout_s),
            "cpu_s": self.cpu_s or math.ceil(self.timeout_s) + 1,
            "memory_bytes": self.memory_bytes,
            "file_size_bytes": self.file_size_bytes,
            "max_processes": self.max_processes,
            "open_files": self.open_files,
        }


@dataclass(frozen=True)
class SandboxResult:
    outcome: str  # one of OUTCOMES
    reason: str
    duration_s: float = 0.0
    output: str = ""  # the last characters the program printed (stdout and stderr)
    isolation: tuple[str, ...] = field(default=())  # which protections applied (see the module docstring)

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


def run_program(code: str, limits: Limits | None = None) -> SandboxResult:
    """Run `code` (a whole Python program) in the sandbox; never raises for what the code does."""
    limits = limits or Limits()
    config = limits.as_config()
    with tempfile.TemporaryDirectory(prefix="llmzoo-sandbox-") as tmp:
        job = Path(tmp)
        config.update(_unprivileged_ids(job))
        (job / "config.json").write_text(json.dumps(config))
        (job / "program.py").write_text(code, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", str(_CHILD), tmp], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,  # its own process group
        )
        try:
            # the supervisor enforces the timeout itself; this is the last resort if it hangs
            out, err = proc.communicate(timeout=limits.timeout_s + 10)
        except subprocess.TimeoutExpired:
            _kill_job(proc, job)
            out, err = proc.communicate()
            return SandboxResult("killed", "the sandbox supervisor did not finish; killed it", limits.timeout_s)
        finally:
            _kill_group(proc.pid)
        output = _tail(job / "output.txt")
    try:
        result = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return SandboxResult("killed", f"the sandbox supervisor failed: {detail[0]}", output=output)
    return SandboxResult(result["outcome"], result["reason"], float(result.get("duration_s", 0.0)), output,
                         tuple(result.get("isolation", ())))


def run_programs(codes: Sequence[str], limits: Limits | None = None, workers: int | None = None) -> list[SandboxResult]:
    """Many programs, `workers` at a time (default: the CPU count), results in the input order."""
    if workers is not None and workers < 1:
        raise LlmzooError(f"sandbox workers must be at least 1, got {workers}")
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(codes) <= 1:
        return [run_program(code, limits) for code in codes]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # each thread only waits on a subprocess
        return list(pool.map(lambda code: run_program(code, limits), codes))


def _unprivileged_ids(job: Path) -> dict:
    """Run as `nobody` when we are root and nobody could still read the interpreter's files."""
    if os.geteuid() != 0:
        return {}
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return {}
    if not all(_world_readable(Path(p)) for p in {sysconfig.get_paths()["stdlib"], sys.executable}):
        return {}  # e.g. a pyenv under /root (mode 0700): nobody could not even import `math`
    os.chown(job, nobody.pw_uid, nobody.pw_gid)
    return {"uid": nobody.pw_uid, "gid": nobody.pw_gid}


def _world_readable(path: Path) -> bool:
    path = path.resolve()
    for parent in [*reversed(path.parents), path]:
        mode = parent.stat().st_mode
        need = stat.S_IXOTH if parent.is_dir() else stat.S_IROTH
        if not mode & need:
            return False
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_job(proc: subprocess.Popen, job: Path) -> None:
    """The supervisor hung: kill it and the program's own group (its pid is the group id)."""
    _kill_group(proc.pid)
    try:
        _kill_group(int((job / "pid").read_text()))
    except (OSError, ValueError):
        pass
    time.sleep(0.01)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - _OUTPUT_TAIL))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
