"""Cutting documents into overlapping chunks.

A chunk is `size` units long and starts `size - overlap` units after the previous one, so a fact
that straddles a boundary is whole in at least one chunk (as long as it is at most `overlap`
units long). Units are words (whitespace-separated) or the embedder's tokens: all-MiniLM-L6-v2
was trained on inputs of at most 256 word pieces and truncates past them, so a chunk in tokens
should stay under that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmzoo.errors import LlmzooError

UNITS = ("words", "tokens")


@dataclass(frozen=True)
class Chunk:
    source: str  # the document it comes from
    start: int  # its first unit's position in the document (word or token index)
    text: str


def check_params(size: int, overlap: int, unit: str) -> None:
    if unit not in UNITS:
        raise LlmzooError(f"chunk unit {unit!r} is not one of {', '.join(UNITS)}")
    if size < 1 or not 0 <= overlap < size:
        raise LlmzooError(f"chunks need size >= 1 and 0 <= overlap < size; got size {size}, overlap {overlap}")


def chunk_text(text: str, source: str, *, size: int = 128, overlap: int = 32, unit: str = "words",
               tokenizer=None) -> list[Chunk]:
    """Overlapping chunks of one document; `tokenizer` (needed for unit="tokens") splits and
    re-joins the text (its decode of a slice of the ids)."""
    check_params(size, overlap, unit)
    if unit == "words":
        # keep each word's trailing whitespace so a chunk's text is the document's own slice
        pieces = re.findall(r"\S+\s*", text)
        join = "".join
    else:
        if tokenizer is None:
            raise LlmzooError("chunking by tokens needs the embedder's tokenizer")
        pieces = tokenizer.encode(text, add_special_tokens=False)
        join = tokenizer.decode
    chunks = []
    step = size - overlap
    for start in range(0, max(len(pieces) - overlap, 1), step):
        body = join(pieces[start:start + size]).strip()
        if body:
            chunks.append(Chunk(source, start, body))
    return chunks
