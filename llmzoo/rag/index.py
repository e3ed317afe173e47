"""An exact cosine-similarity index: a directory holding `vectors.safetensors` (the chunks'
unit embeddings, (N, D) float32) and `manifest.json` (which embedder made them, the chunking
parameters, the sources and each chunk's text). Exact search is one matrix-vector product, which
is fast enough for the thousands of chunks a local document set makes; faiss is not needed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from llmzoo.errors import LlmzooError
from llmzoo.rag.chunking import Chunk, check_params, chunk_text
from llmzoo.rag.embedder import embed_texts, embedder_id, load_embedder

FORMAT, VERSION = "llmzoo-rag-index", 1
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text", ".markdown")


@dataclass
class Hit:
    chunk: Chunk
    score: float  # cosine similarity to the question


@dataclass
class RagIndex:
    embedder: str
    chunking: dict
    sources: list[dict]
    chunks: list[Chunk]
    vectors: torch.Tensor  # (N, D) unit rows

    def check_embedder(self, asked: str | None) -> None:
        """A question embedded by another encoder than the index's lives in another space: refuse it."""
        if asked is not None and embedder_id(asked) != self.embedder:
            raise LlmzooError(f"this index was built with the embedder {self.embedder!r}, not {asked!r}; "
                              f"ask with --embedder {self.embedder} or rebuild the index")

    def search(self, question: str, k: int = 4) -> list[Hit]:
        if k < 1:
            raise LlmzooError(f"k must be >= 1 (passages retrieved), got {k}")
        query = embed_texts(self.embedder, [question])[0]
        scores = self.vectors @ query
        top = scores.topk(min(k, len(self.chunks)))
        return [Hit(self.chunks[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]

    def save(self, out: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": self.vectors.contiguous()}, str(out / "vectors.safetensors"))
        manifest = {"format": FORMAT, "version": VERSION, "embedder": self.embedder,
                    "dim": int(self.vectors.shape[1]), "chunking": self.chunking, "sources": self.sources,
                    "chunks": [asdict(c) for c in self.chunks]}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        return out


def document_files(paths: list[str | Path]) -> list[Path]:
    """The files named, and the text files under the directories named (sorted, for a stable index)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
            if not found:
                raise LlmzooError(f"{path} holds no text files ({', '.join(TEXT_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise LlmzooError(f"document {path} does not exist")
    return files


def build_index(paths: list[str | Path], *, embedder: str = "all-minilm-l6-v2", size: int = 128,
                overlap: int = 32, unit: str = "words") -> RagIndex:
    check_params(size, overlap, unit)
    tokenizer = load_embedder(embedder)[1] if unit == "tokens" else None
    chunks, sources = [], []
    for file in document_files(paths):
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LlmzooError(f"{file} is not UTF-8 text; give text documents") from None
        found = chunk_text(text, str(file), size=size, overlap=overlap, unit=unit, tokenizer=tokenizer)
        chunks += found
        sources.append({"path": str(file), "chunks": len(found)})
    if not chunks:
        raise LlmzooError("the documents hold no text to index")
    vectors = embed_texts(embedder, [c.text for c in chunks])
    return RagIndex(embedder_id(embedder), {"unit": unit, "size": size, "overlap": overlap}, sources, chunks,
                    vectors)


def load_index(path: str | Path) -> RagIndex:
    from safetensors.torch import load_file

    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file() or not (path / "vectors.safetensors").is_file():
        raise LlmzooError(f"{path} is not a RAG index (no manifest.json + vectors.safetensors); build one with "
                          f"`llmzoo rag index DOCS... --out {path}`")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
        chunks = [Chunk(**c) for c in manifest["chunks"]]
        vectors = load_file(str(path / "vectors.safetensors"))["vectors"]
        if tuple(vectors.shape) != (len(chunks), manifest["dim"]):
            raise ValueError(f"vectors {tuple(vectors.shape)} for {len(chunks)} chunks of dim {manifest['dim']}")
        return RagIndex(manifest["embedder"], manifest["chunking"], manifest["sources"], chunks, vectors.float())
    except (ValueError, KeyError, TypeError) as e:
        raise LlmzooError(f"{path} is not a valid llmzoo RAG index ({e}); rebuild it with `llmzoo rag index`") from None
