"""The models a server holds: a decoder behind its own continuous-batching engine, or an encoder
for embeddings, each under the name clients pass as `model`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.infer.engine import Engine
from llmzoo.sentence_embedding import Pooling

DEFAULT_MAX_LEN = 4096  # context per request when the model allows more: the KV cache is max_len x max_batch


@dataclass
class ServedModel:
    name: str
    model: nn.Module
    tokenizer: object
    engine: Engine | None = None  # decoders
    pooling: Pooling = field(default_factory=Pooling)  # encoders
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one embedding batch at a time

    @property
    def kind(self) -> str:
        return "decoder" if self.engine is not None else "encoder"

    @property
    def alive(self) -> bool:
        """False once the engine's thread has stopped on an internal error (it fails what it held)."""
        return self.engine is None or not self.engine.failed

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


def served_name(source: str) -> str:
    """What clients call a model: a zoo name as it is, a directory by its name, a file by its stem."""
    path = Path(source)
    if path.exists():
        return path.resolve().name if path.is_dir() else path.stem
    return source


def load_served(source: str, *, max_batch: int = 8, max_queue: int = 64, max_len: int | None = None,
                compile: bool | None = None, name: str | None = None) -> ServedModel:
    """Load a model for serving: decoders get an Engine of `max_batch` rows, encoders are kept for
    /v1/embeddings; other architectures (encoder-decoder) are refused."""
    import llmzoo
    from llmzoo.hub import resolve_source
    from llmzoo.sentence_embedding import pooling_from_dir

    model = llmzoo.load(source)
    tokenizer = llmzoo.load_tokenizer(source)
    name = name or served_name(source)
    arch = model.config.arch
    if arch == "encoder":
        path = resolve_source(source)
        pooling = pooling_from_dir(path) if Path(path).is_dir() else Pooling()
        return ServedModel(name, model.eval(), tokenizer, pooling=pooling)
    if arch != "decoder":
        raise LlmzooError(f"{source} is a {arch} model; `llmzoo serve` serves decoders (chat, completions) "
                          f"and encoders (embeddings)")
    if max_len is not None and max_len < 2:
        raise LlmzooError(f"max_len must be >= 2 (a prompt token and a new one), got {max_len}")
    max_len = min(DEFAULT_MAX_LEN if max_len is None else max_len, model.config.max_seq_len)
    engine = Engine(model, tokenizer, max_batch=max_batch, max_queue=max_queue, max_len=max_len, compile=compile)
    return ServedModel(name, model, tokenizer, engine=engine)
