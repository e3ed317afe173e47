"""Constrained decoding: a per-request hook that masks the logits before each sampled token.

A request submitted with `constraint=` (Engine.submit) has, at every step,
    allowed = constraint.allowed(remaining, vocab_size)   # (V,) bool
applied to its row's scores (disallowed tokens get -inf) before sampling, then
    constraint.advance(token)
with the token sampled. `remaining` is how many tokens the request may still produce (its
max_tokens budget), so a grammar can steer towards closing in time. `complete` says the output so
far is a whole sentence of the grammar (the engine then also allows EOS); `finished` says nothing
may follow (the engine ends the request). A request without a constraint does no work for it.

The vocabulary side is shared by every grammar: `TokenTable` holds each token's bytes, computed
once per tokenizer, in a byte trie so a grammar can walk all tokens that keep its state valid and
prune a whole subtree at its first bad byte.
"""

from __future__ import annotations

import re
import weakref
from typing import Protocol

import torch


class TokenConstraint(Protocol):
    complete: bool  # the output so far is a whole value: EOS may come next
    finished: bool  # nothing may follow: the request ends now

    def allowed(self, remaining: int, vocab_size: int) -> torch.Tensor:
        """(vocab_size,) bool: the tokens that may come next, `remaining` tokens left including it."""

    def advance(self, token_id: int) -> None:
        """Record the token sampled (one that allowed() allowed)."""


class TrieNode:
    __slots__ = ("children", "ids")

    def __init__(self) -> None:
        self.children: dict[int, TrieNode] = {}
        self.ids: list[int] = []  # tokens whose bytes end here

    def insert(self, data: bytes, token_id: int) -> None:
        node = self
        for b in data:
            node = node.children.get(b) or node.children.setdefault(b, TrieNode())
        node.ids.append(token_id)


_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_level_inverse() -> dict[str, int]:
    from llmzoo.tokenizer.bytelevel import byte_alphabet

    return {char: b for b, char in byte_alphabet().items()}


def token_bytes(tokenizer) -> list[bytes | None]:
    """Each token id's bytes as it appears inside generated text; None for special tokens (never
    produced under a constraint) and tokens whose bytes cannot be known."""
    from tokenizers import decoders

    backend = tokenizer.backend
    added = backend.get_added_tokens_decoder()
    byte_level = isinstance(backend.decoder, decoders.ByteLevel)
    inverse = _byte_level_inverse() if byte_level else {}
    out: list[bytes | None] = []
    for i in range(tokenizer.vocab_size):
        if i in added:
            out.append(None if added[i].special else added[i].content.encode())
            continue
        piece = backend.id_to_token(i)
        if piece is None:
            out.append(None)
        elif byte_level:  # GPT-2's printable alphabet, one character per byte
            data = [inverse.get(c) for c in piece]
            out.append(None if None in data else bytes(data))
        elif backend.decoder is not None and "Replace" in repr(backend.decoder):  # SentencePiece: ▁ and <0xNN>
            match = _BYTE_FALLBACK.fullmatch(piece)
            out.append(bytes([int(match.group(1), 16)]) if match else piece.replace("\u2581", " ").encode())
        else:
            text = tokenizer.decode([i])
            out.append(None if "\ufffd" in text else text.encode())
    return [b if b else None for b in out]


class TokenTable:
    """A tokenizer's tokens as bytes, in a trie (built once per tokenizer, see for_tokenizer)."""

    def __init__(self, tokenizer) -> None:
        self.bytes = token_bytes(tokenizer)
        self.size = len(self.bytes)
        self.trie = TrieNode()
        for i, data in enumerate(self.bytes):
            if data is not None:
                self.trie.insert(data, i)

    _cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "TokenTable":
        """One table per tokenizer object (building it decodes the whole vocabulary: ~0.5 s at 49k)."""
        table = cls._cache.get(tokenizer)
        if table is None:
            table = cls._cache[tokenizer] = cls(tokenizer)
        return table
