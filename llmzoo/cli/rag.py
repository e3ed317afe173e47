"""`llmzoo rag index DOCS... --out INDEX` and `llmzoo rag ask INDEX --model SOURCE QUESTION`:
retrieval-augmented generation over a folder of documents (llmzoo.rag)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("rag", help="retrieval-augmented generation: index documents, ask questions with sources")
    r.set_defaults(func=lambda args: r.print_help() or 2)
