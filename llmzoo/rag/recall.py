"""Retrieval quality: recall@k, the fraction of questions whose labelled source is among the top k."""

from __future__ import annotations

from llmzoo.rag.index import RagIndex


def recall_at_k(index: RagIndex, labelled: list[tuple[str, str]], k: int) -> float:
    """labelled: (question, source path that answers it) pairs."""
    hits = sum(any(hit.chunk.source == source for hit in index.search(question, k)) for question, source in labelled)
    return hits / len(labelled)
