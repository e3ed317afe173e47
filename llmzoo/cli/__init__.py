"""`llmzoo` command line: one sub-command group per module in this package.

Each module listed in COMMAND_MODULES defines `register(subparsers)`, which adds its
sub-commands and sets `func` on them (a function taking the parsed args and returning
an exit code). User mistakes raise LlmzooError and become one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from llmzoo.errors import LlmzooError

# Add a module here when it exists; order is the order of `llmzoo --help`.
COMMAND_MODULES: list[str] = [
    "generate",
    "convert",
    "embed",
    "data",
    "tokenizer",
    "pretrain",
    "finetune",
    "align",
    "models",
    "scaling",
    "eval",
    "adapter",
    "serve",
    "rag",
    "retro",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmzoo",
        description="Every milestone LLM as real, runnable code: build, load, convert, generate, train.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"llmzoo.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LlmzooError as e:
        from llmzoo.train.launch import report_worker_error

        report_worker_error(f"error: {e}")  # once, not once per torchrun worker
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `llmzoo models | head`: the reader went away; not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
