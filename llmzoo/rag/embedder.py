"""The sentence encoder an index is built with, loaded once per process per name."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from llmzoo.errors import LlmzooError


def embedder_id(source: str) -> str:
    """How the manifest names an embedder: a zoo name in lower case, a directory by its full path."""
    path = Path(source)
    return str(path.resolve()) if path.exists() else source.lower()


@functools.lru_cache(maxsize=4)
def load_embedder(source: str):
    import llmzoo
    from llmzoo.hub import resolve_source
    from llmzoo.sentence_embedding import Pooling, pooling_from_dir

    model = llmzoo.load(source)
    if model.config.arch != "encoder":
        raise LlmzooError(f"{source} is a {model.config.arch} model; a RAG embedder is a sentence encoder "
                          f"(e.g. all-minilm-l6-v2)")
    tokenizer = llmzoo.load_tokenizer(source)
    path = resolve_source(source)
    pooling = pooling_from_dir(path) if Path(path).is_dir() else Pooling()
    return model.eval(), tokenizer, pooling


def embed_texts(source: str, texts: list[str]) -> torch.Tensor:
    """(N, D) unit vectors (L2-normalised here too, so the index's dot product is the cosine)."""
    from llmzoo.sentence_embedding import embed

    model, tokenizer, pooling = load_embedder(source)
    vectors = embed(model, tokenizer, texts, pooling=pooling)
    return torch.nn.functional.normalize(vectors.float(), dim=-1)
