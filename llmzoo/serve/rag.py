"""Retrieval for /v1/chat/completions: `"rag": {"index": NAME, "k": 4}` (an extension field)
retrieves the top k passages for the last user message, puts them numbered into that message
(llmzoo.rag.rag_messages) and answers with `"sources"` beside `"choices"`.

Clients name an index the server was started with (`llmzoo serve --rag-index PATH`), never a
path of their own choosing: a client must not make the server read arbitrary files."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from pathlib import Path

from llmzoo.rag.answer import rag_messages, sources_of
from llmzoo.rag.index import RagIndex, load_index
from llmzoo.serve.errors import APIError
from llmzoo.serve.schemas import RagOptions


def load_indexes(paths: list[str]) -> dict[str, RagIndex]:
    """name (the directory's name) -> index; the path as given is accepted as a name too."""
    indexes: dict[str, RagIndex] = {}
    for path in paths:
        index = load_index(path)
        indexes[Path(path).resolve().name] = index
        indexes[str(path)] = index
    return indexes


async def retrieve(indexes: dict[str, RagIndex], options: RagOptions, messages: list[dict],
                   pool: Executor) -> tuple[list[dict], list[dict]]:
    """(messages with the passages, sources) — embedding the question runs on the pool, off the event loop."""
    index = indexes.get(options.index)
    if index is None:
        known = ", ".join(sorted({Path(k).name for k in indexes})) or "none (start it with --rag-index PATH)"
        raise APIError(400, f"unknown RAG index {options.index!r}; this server has: {known}", param="rag.index",
                       code="unknown_index")
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
    if not question:
        raise APIError(400, "rag needs a user message to retrieve passages for", param="rag")
    hits = await asyncio.get_running_loop().run_in_executor(pool, index.search, question, options.k)
    return rag_messages(messages, hits), sources_of(hits)
