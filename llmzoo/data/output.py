"""Atomic output directories: build in `OUT.tmp-*` next to OUT, rename into place at the end.

An interrupted or failed run leaves at most a `.tmp-` directory (removed on failure
when Python still runs), never an OUT that looks complete. `--overwrite` replaces only
an earlier llmzoo output (a directory with manifest.json) or an empty directory, so a
typo in --out cannot delete someone's home directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from llmzoo.errors import LlmzooError


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise LlmzooError(f"output {str(out)!r} exists and is not a directory; choose another --out")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise LlmzooError(f"output directory {str(out)!r} already exists; "
                          "pass --overwrite to replace it or choose another --out")
    if not (out / "manifest.json").is_file():
        raise LlmzooError(f"refusing to overwrite {str(out)!r}: it is not an llmzoo data directory (no manifest.json)")


def prepare_output(out: Path, overwrite: bool) -> Path:
    """Check OUT can be written and return a fresh temporary directory beside it."""
    out = Path(out)
    _check_target(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return _fresh_directory(out.parent, f"{out.name}.tmp-")
    except OSError as e:
        raise LlmzooError(f"cannot create the output directory next to {str(out)!r}: {e.strerror or e}") from None


def _fresh_directory(parent: Path, prefix: str) -> Path:
    """A new, uniquely named directory under `parent`, with the permissions the user's umask gives
    (tempfile.mkdtemp would make it 0700, and the renamed OUT would stay unreadable to others)."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name under {parent}")


def publish_directory(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished tmp directory to OUT (replacing an old output if allowed)."""
    out = Path(out)
    _check_target(out, overwrite)  # again: something may have appeared while we worked
    old = None
    if out.exists():
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def discard(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
