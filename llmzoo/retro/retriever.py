"""The frozen retriever: for each complete chunk C_u of a sequence, the k nearest database chunks with their
continuations (Borgeaud et al. 2022, section 2.3: Ret(C_u) = ([N^1, F^1], ..., [N^k, F^k])). The result is
what `Retro(..., neighbours=...)` reads: (B, L, k, 2m) token ids."""

from __future__ import annotations

import torch

from llmzoo.errors import LlmzooError
from llmzoo.rag.embedder import embed_texts
from llmzoo.retro.database import NeighbourDB


def overlapping(db: NeighbourDB, spans: list[tuple[int, int]]) -> torch.Tensor:
    """(len(spans), N) bool: database values (chunk i covers tokens i*m .. i*m + 2m) that share a token with
    the corpus span [start, end) a sequence was taken from, so it cannot retrieve its own text."""
    m = db.chunk
    first = torch.arange(len(db.keys)) * m
    bounds = torch.tensor(spans, dtype=torch.long)  # (Q, 2)
    return (first[None] < bounds[:, 1:]) & (first[None] + 2 * m > bounds[:, :1])


def retrieve(db: NeighbourDB, tokenizer, input_ids: torch.Tensor, k: int = 2,
             spans: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """input_ids (B, T) in the database's tokenizer -> neighbours (B, T // m, k, 2m): each complete chunk's
    text embedded by the database's frozen embedder and searched exactly. spans: where each row lies in the
    database's corpus, to keep its own text out (the paper's exclusion of the sequence's document)."""
    B, T = input_ids.shape
    m, L = db.chunk, T // db.chunk
    if L == 0:  # no complete chunk: nothing to retrieve for
        return input_ids.new_zeros(B, 0, k, 2 * m)
    chunks = input_ids[:, : L * m].reshape(B * L, m)
    queries = embed_texts(db.embedder, [tokenizer.decode(c.tolist()) for c in chunks])
    return _neighbours(db, queries, k, spans, B, L)


def retrieve_db_rows(db: NeighbourDB, starts: torch.Tensor, seq_len: int, k: int = 2) -> torch.Tensor:
    """Neighbours (B, L, k, 2m) for training rows cut from the database's own corpus at chunk-aligned
    `starts` (B,): the values of neighbour_chunks."""
    return db.values(neighbour_chunks(db, starts, seq_len, k))


def neighbour_chunks(db: NeighbourDB, starts: torch.Tensor, seq_len: int, k: int = 2) -> torch.Tensor:
    """(B, L, k) database chunk indices: the neighbours of training rows tokens[s : s + seq_len + 1] for s in
    `starts`. The query keys are the database's keys (embedded once, at indexing; the paper precomputes the
    training set's neighbours too), and no neighbour (chunk and continuation) shares a token with its row."""
    m, L = db.chunk, seq_len // db.chunk
    if bool((starts % m != 0).any()):
        raise LlmzooError(f"row starts must be multiples of the chunk {m} (the database's keys are its chunks)")
    index = (starts[:, None] // m + torch.arange(L)).clamp(max=len(db.keys) - 1)  # (B, L)
    spans = [(int(s), int(s) + seq_len + 1) for s in starts]  # + 1: the last target token too
    exclude = overlapping(db, spans).repeat_interleave(L, dim=0)
    return db.search(db.keys[index.flatten()], k, exclude).view(len(starts), L, k)


def _neighbours(db: NeighbourDB, queries: torch.Tensor, k: int, spans, B: int, L: int) -> torch.Tensor:
    exclude = overlapping(db, spans).repeat_interleave(L, dim=0) if spans is not None else None
    top = db.search(queries, k, exclude)  # (B * L, k)
    return db.values(top).view(B, L, k, 2 * db.chunk)
