"""The sandbox's supervisor: run as `python -I sandbox_child.py JOBDIR` by llmzoo.eval.sandbox.

Standard library only (it runs in a fresh, isolated interpreter). It reads JOBDIR/config.json
and JOBDIR/program.py, forks the program into its own process group with its limits, waits
for it up to the wall-clock timeout, then kills every process the program left behind and
prints one JSON line: {"outcome", "reason", "isolation"}.

Why a supervisor between the caller and the program: it is a *child subreaper*
(prctl PR_SET_CHILD_SUBREAPER), so a grandchild that double-forks or calls setsid() is
re-parented to it instead of to init, and the clean-up loop below still finds and kills it.
A plain killpg() from the caller would miss such processes.
"""

from __future__ import annotations

import _socket
import builtins
import ctypes
import json
import os
import resource
import signal
import socket
import sys
import time

_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MAX_REASON = 800


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> bool:
    """prctl(2), Linux only: False where it is missing or refused (then that protection is absent)."""
    try:
        return _libc().prctl(option, value, 0, 0, 0) == 0
    except AttributeError:
        return False


def _children(parent: int) -> list[int]:
    """Pids whose parent is `parent` (a /proc scan: works without CONFIG_PROC_CHILDREN)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[1]) == parent:
            kids.append(int(name))
    return kids


def _kill_descendants(program_pgid: int, budget_s: float = 3.0) -> bool:
    """SIGKILL everything below us until nothing is left; True when nothing survived."""
    me = os.getpid()
    deadline = time.monotonic() + budget_s
    while True:
        try:
            os.killpg(program_pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        kids = _children(me)
        for pid in kids:
            try:
                pgid = os.getpgid(pid)
                if pgid != os.getpgrp():  # never our own group: that would kill us
                    os.killpg(pgid, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            except OSError:  # gone meanwhile
                pass
        while True:  # reap whatever died (the program and re-parented orphans)
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
        if not kids:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def _descendants(root: int) -> int:
    """How many processes descend from `root` (one /proc scan)."""
    parent_of: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            parent_of[int(name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    count, todo = 0, list(children.get(root, []))
    while todo:  # breadth-first: a fork bomb's tree is as deep as it is wide
        pid = todo.pop()
        count += 1
        todo.extend(children.get(pid, []))
    return count


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _threads_total() -> int:
    with open("/proc/loadavg") as f:  # "0.01 0.05 0.10 2/345 6789": running/total threads
        return int(f.read().split()[3].split("/")[1])


def _processes_of(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                count += os.stat(f"/proc/{name}").st_uid == uid
            except OSError:
                pass
    return count


def _drop_privileges(cfg: dict, isolation: list[str]) -> None:
    uid, gid = cfg.get("uid"), cfg.get("gid")
    if uid is None or os.geteuid() != 0:
        isolation.append(f"uid {os.geteuid()} (unchanged)")
        return
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    # a uid change makes the process undumpable: /proc/self/* then belongs to root, and the
    # namespace's uid_map could not be written
    _prctl(_PR_SET_DUMPABLE, 1)
    isolation.append(f"uid {uid} (dropped from root)")


def _isolate_network(isolation: list[str]) -> None:
    """A new user + network namespace: the kernel then knows only a loopback that is down."""
    libc = _libc()
    uid, gid = os.geteuid(), os.getegid()
    if not hasattr(libc, "unshare"):
        isolation.append("no network namespace (not Linux)")
        return
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        isolation.append(f"no network namespace (unshare: {os.strerror(ctypes.get_errno())})")
        return
    try:  # map our own ids, or file creation fails with EOVERFLOW inside the namespace
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    except OSError as e:
        isolation.append(f"network namespace (id map failed: {e.strerror})")
        return
    isolation.append("network namespace")


def _set_limits(cfg: dict, isolation: list[str]) -> None:
    def limit(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    limit(resource.RLIMIT_AS, cfg["memory_bytes"])
    cpu = cfg["cpu_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # soft: SIGXCPU, hard: SIGKILL
    limit(resource.RLIMIT_FSIZE, cfg["file_size_bytes"])
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_NOFILE, cfg["open_files"])
    # RLIMIT_NPROC counts every process of the (real) uid, so allow what already runs plus the budget.
    limit(resource.RLIMIT_NPROC, _processes_of(os.getuid()) + cfg["max_processes"])
    isolation.append("rlimits AS/CPU/FSIZE/NOFILE/NPROC/CORE")


def _block_sockets(isolation: list[str]) -> None:
    """Python-level belt to the namespace's braces: every way the socket modules create one raises."""
    def refused(*args, **kwargs):
        raise PermissionError("network access is disabled in the llmzoo sandbox")

    for module in (socket, _socket):
        for name in ("socket", "socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo"):
            if hasattr(module, name):
                setattr(module, name, refused)
    isolation.append("socket module disabled")


def _run_program(cfg: dict, source: str, report_fd: int) -> None:
    """In the forked child: isolate, limit, run; report one JSON record on report_fd; never returns."""
    isolation: list[str] = []
    record = {"outcome": "failed", "reason": "internal error before the program ran"}
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        out = os.open("output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        if _prctl(_PR_SET_NO_NEW_PRIVS, 1):  # setuid binaries (sudo, ...) gain nothing
            isolation.append("no new privileges")
        _drop_privileges(cfg, isolation)
        _isolate_network(isolation)
        _set_limits(cfg, isolation)
        _block_sockets(isolation)
        os.write(report_fd, json.dumps({"isolation": isolation}).encode() + b"\n")  # even if it never ends
        code = compile(source, "program.py", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
        record = {"outcome": "passed", "reason": "the program ran to its end"}
    except MemoryError:
        record = {"outcome": "out_of_memory", "reason": f"MemoryError: over the {cfg['memory_bytes']:,}-byte cap"}
    except SystemExit as e:
        record = {"outcome": "failed", "reason": f"the program exited (SystemExit {e.code!r}) before its end"}
    except BaseException as e:  # the program's own failure, whatever it is
        message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        record = {"outcome": "failed", "reason": message[:_MAX_REASON]}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    os.write(report_fd, json.dumps(record).encode()[:16000] + b"\n")
    os._exit(0)


def _outcome_of_signal(sig: int, cfg: dict) -> dict:
    if sig == signal.SIGXCPU:
        return {"outcome": "timed_out", "reason": f"over the CPU-time limit of {cfg['cpu_s']} s"}
    if sig == signal.SIGXFSZ:
        return {"outcome": "failed", "reason": f"wrote more than the {cfg['file_size_bytes']:,}-byte file limit"}
    name = signal.Signals(sig).name
    if sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
        return {"outcome": "killed", "reason": f"crashed with {name} (often an allocation refused by the memory cap)"}
    return {"outcome": "killed", "reason": f"killed by {name}"}


def _json_lines(raw: bytes) -> list[str]:
    out = []
    for line in raw.decode(errors="replace").splitlines():
        try:
            json.loads(line)
        except ValueError:
            continue
        out.append(line)
    return out


def main(jobdir: str) -> int:
    os.chdir(jobdir)
    with open("config.json") as f:
        cfg = json.load(f)
    with open("program.py", encoding="utf-8") as f:
        source = f.read()
    isolation_super: list[str] = []
    if _prctl(_PR_SET_CHILD_SUBREAPER, 1):
        isolation_super.append("subreaper clean-up")
    read_fd, write_fd = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _run_program(cfg, source, write_fd)
    os.close(write_fd)
    with open("pid", "w") as f:  # for the caller's last-resort kill
        f.write(str(pid))
    deadline = start + cfg["timeout_s"]
    # The kernel never applies RLIMIT_NPROC to root (copy_process exempts INIT_USER), so when
    # the program keeps uid 0 we watch its process count ourselves: every poll reads the
    # machine's thread total (/proc/loadavg, microseconds); only when that has grown past
    # the budget do we count the program's own descendants (a /proc scan, milliseconds).
    watch = os.geteuid() == 0 and cfg.get("uid") is None
    baseline = _threads_total()
    status, too_many = None, 0
    while status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
        elif time.monotonic() > deadline:
            break
        elif watch and _threads_total() > baseline + cfg["max_processes"] + 32:
            # Freeze the program's group first: a fork bomb outgrows (and starves) a scan.
            _signal_group(pid, signal.SIGSTOP)
            too_many = _descendants(os.getpid())
            if too_many > cfg["max_processes"] + 1:  # + 1: the program itself
                _signal_group(pid, signal.SIGKILL)
                break
            _signal_group(pid, signal.SIGCONT)
            baseline = _threads_total() - too_many  # it was other processes on the machine
            too_many = 0
        else:
            time.sleep(0.002)
    os.set_blocking(read_fd, False)
    try:
        raw = os.read(read_fd, 1 << 16)
    except BlockingIOError:
        raw = b""
    lines = [json.loads(line) for line in _json_lines(raw)]
    isolation = lines[0].get("isolation", []) if lines else []
    if status is None and too_many:
        result = {"outcome": "killed",
                  "reason": f"ran {too_many} processes at once, over the limit of {cfg['max_processes']}"}
    elif status is None:
        result = {"outcome": "timed_out", "reason": f"over the wall-clock limit of {cfg['timeout_s']} s"}
    elif os.WIFSIGNALED(status):
        result = _outcome_of_signal(os.WTERMSIG(status), cfg)
    elif len(lines) >= 2 and "outcome" in lines[-1]:
        result = lines[-1]
    else:
        result = {"outcome": "failed",
                  "reason": f"the program exited (code {os.waitstatus_to_exitcode(status)}) before its end"}
    result["duration_s"] = time.monotonic() - start
    clean = _kill_descendants(pid)
    result["isolation"] = isolation_super + list(isolation)
    if watch:
        isolation.append("process count watched (root: RLIMIT_NPROC does not apply)")
    if not clean:
        result["isolation"].append("WARNING: some processes could not be killed")
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
