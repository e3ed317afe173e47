"""Several local training processes without torchrun, and one error line however many fail.

`llmzoo pretrain --nproc-per-node N ...` starts N copies of the same command through
torch.distributed's elastic launcher (what torchrun runs), on this machine, with a local
rendezvous. A worker that stops on a user mistake (LlmzooError) records the message in the error
file the launcher gives it (TORCHELASTIC_ERROR_FILE) and prints nothing; the launcher prints that
message once as `error: ...` and exits 2, as a single process would.

Under plain torchrun (clusters) the same error file feeds torchrun's failure summary, and only
rank 0 prints the `error: ...` line; torchrun still prints its own summary after it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid

from llmzoo.errors import ConfigError

# Set in the workers this launcher starts: they leave printing a user error to it.
_LAUNCHED = "LLMZOO_LAUNCHED"


def report_worker_error(message: str) -> None:
    """Print `message` (an `error: ...` line) the way this process's launch wants it: always when
    alone, from rank 0 only under torchrun, never under our launcher (it prints it). In a launched
    worker the message also goes to the elastic error file, where the launcher or torchrun reads it."""
    recorded = False
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:
        try:
            # torchelastic's error-file format (py_callstack is what torchrun's summary shows), plus our mark
            info = {"py_callstack": message, "timestamp": str(int(time.time()))}
            with open(error_file, "w") as f:
                json.dump({"message": {"message": message, "extraInfo": info}, "llmzoo": True}, f)
            recorded = True
        except OSError:
            pass
    if recorded and os.environ.get(_LAUNCHED):
        return
    if os.environ.get("RANK", "0") == "0":
        print(message, file=sys.stderr)


def launch(nproc: int, argv: list[str]) -> int:
    """Run `python -m llmzoo ARGV` as `nproc` processes of one process group; their exit code,
    with a failed worker's llmzoo error printed once."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ConfigError(f"--nproc-per-node must be at least 1, got {nproc}")
    if os.environ.get("RANK") is not None:
        raise ConfigError("--nproc-per-node starts the workers itself; under torchrun leave it out")
    # The agent's own warnings ("Sending process ... SIGTERM", "failed (exitcode: 2)") repeat what
    # the one error line says.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ[_LAUNCHED] = "1"  # inherited by the workers
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: N processes must not each take every core
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"llmzoo-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", "llmzoo", *argv)
    except ChildFailedError as e:
        ours = sorted((f.timestamp, rank, f) for rank, f in e.failures.items() if f.error_file_data.get("llmzoo"))
        if ours:
            print(ours[0][2].error_file_data["message"]["message"], file=sys.stderr)
            return 2
        rank, failure = e.get_first_failure()
        print(f"error: worker {rank} of {nproc} failed ({failure.message or f'exit code {failure.exitcode}'}); "
              "its output is above", file=sys.stderr)
        return 1
    finally:
        os.environ.pop(_LAUNCHED, None)
    return 0
