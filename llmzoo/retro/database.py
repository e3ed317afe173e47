"""RETRO's retrieval database (Borgeaud et al. 2022, section 2.3): a token corpus cut into chunks of m tokens,
each keyed by a frozen sentence embedding of its text; a neighbour is a key chunk and its continuation
(the next m tokens), 2m tokens. The paper keys chunks by time-averaged frozen BERT states and searches
approximately (SCaNN); here all-MiniLM-L6-v2 (mean-pooled BERT) and an exact search, one matmul over unit
vectors, which is exact and quick for the millions of chunks a single machine holds (faiss is not needed).

On disk, a directory: `db.safetensors` (tokens (n,) int64, keys (N, D) float32) and `db.json` (format,
embedder, tokenizer, chunk, pad id). No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from llmzoo.errors import LlmzooError
from llmzoo.rag.embedder import embed_texts, embedder_id

FORMAT, VERSION = "llmzoo-retro-db", 1


@dataclass
class NeighbourDB:
    embedder: str  # embedder_id of the frozen encoder that made the keys
    tokenizer: str  # the tokenizer the corpus was cut with; neighbours are its token ids
    chunk: int  # m
    pad_id: int  # fills a continuation that runs past the corpus' end
    tokens: torch.Tensor  # (n,) int64: the corpus; chunk i is tokens[i*m : (i+1)*m]
    keys: torch.Tensor  # (N, D) float32 unit rows, N = n // m

    def check_embedder(self, asked: str | None) -> None:
        """A query embedded by another encoder lives in another space: refuse rather than retrieve noise."""
        if asked is not None and embedder_id(asked) != self.embedder:
            raise LlmzooError(f"this RETRO database was built with the embedder {self.embedder!r}, not {asked!r}; "
                              f"use --embedder {self.embedder} or rebuild it")

    def values(self, index: torch.Tensor) -> torch.Tensor:
        """(...,) chunk indices -> (..., 2m) token ids: each chunk and its continuation (RETRO's [N, F])."""
        m = self.chunk
        padded = torch.cat((self.tokens, self.tokens.new_full((2 * m,), self.pad_id)))
        return padded[index[..., None] * m + torch.arange(2 * m)]

    def search(self, queries: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """queries (Q, D) unit vectors -> (Q, k) indices of the nearest chunks by cosine (exact).
        exclude (Q, N) bool: chunks a query may not retrieve (the paper keeps a training sequence's own
        document out of its neighbours, or the model learns to copy its future)."""
        if not 1 <= k <= len(self.keys):
            raise LlmzooError(f"k must be in 1..{len(self.keys)} (chunks in the database), got {k}")
        scores = queries.float() @ self.keys.T  # (Q, N)
        if exclude is not None:
            scores = scores.masked_fill(exclude, float("-inf"))
        return scores.topk(k, dim=-1).indices

    def save(self, out: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"tokens": self.tokens.contiguous(), "keys": self.keys.contiguous()}, str(out / "db.safetensors"))
        meta = {"format": FORMAT, "version": VERSION, "embedder": self.embedder, "tokenizer": self.tokenizer,
                "chunk": self.chunk, "pad_id": self.pad_id, "n_chunks": len(self.keys), "dim": int(self.keys.shape[1])}
        (out / "db.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        return out


def build_db(tokens: torch.Tensor | list[int], tokenizer, *, tokenizer_id: str, embedder: str = "all-minilm-l6-v2",
             chunk: int = 64, pad_id: int = 0) -> NeighbourDB:
    """Cut `tokens` into chunks of `chunk` (a shorter tail is dropped: it has no key), embed each chunk's text
    (tokenizer.decode) with the frozen `embedder`."""
    if chunk < 1:
        raise LlmzooError(f"--chunk must be >= 1 token, got {chunk}")
    tokens = torch.as_tensor(tokens, dtype=torch.long).flatten()
    n = len(tokens) // chunk
    if n == 0:
        raise LlmzooError(f"the corpus has {len(tokens)} tokens, fewer than one chunk of {chunk}")
    texts = [tokenizer.decode(tokens[i * chunk : (i + 1) * chunk].tolist()) for i in range(n)]
    keys = embed_texts(embedder, texts)
    return NeighbourDB(embedder_id(embedder), tokenizer_id, chunk, pad_id, tokens, keys)


def load_db(path: str | Path, embedder: str | None = None) -> NeighbourDB:
    """Read a database; with `embedder`, refuse one built with another."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "db.json").is_file() or not (path / "db.safetensors").is_file():
        raise LlmzooError(f"{path} is not a RETRO database (no db.json + db.safetensors); build one with "
                          f"`llmzoo retro index CORPUS --out {path}`")
    try:
        meta = json.loads((path / "db.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        tensors = load_file(str(path / "db.safetensors"))
        db = NeighbourDB(meta["embedder"], meta["tokenizer"], int(meta["chunk"]), int(meta["pad_id"]),
                         tensors["tokens"].long(), tensors["keys"].float())
    except (ValueError, KeyError, TypeError) as e:
        raise LlmzooError(f"{path} is not a valid RETRO database ({e}); rebuild it with `llmzoo retro index`") from None
    db.check_embedder(embedder)
    return db
