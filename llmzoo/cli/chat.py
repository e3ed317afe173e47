"""`llmzoo chat --tools tools.py`: extends the `chat` command (defined in llmzoo/cli/generate.py)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
