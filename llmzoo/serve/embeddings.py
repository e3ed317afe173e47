"""/v1/embeddings on an encoder: Sentence-BERT pooling (mean + L2 norm for all-MiniLM-L6-v2), the
same vectors as `llmzoo.embed`. OpenAI's client asks for base64 by default: little-endian float32."""

from __future__ import annotations

import base64

import numpy as np
import torch

from llmzoo.serve.errors import APIError
from llmzoo.serve.models import ServedModel
from llmzoo.serve.schemas import EmbeddingRequest
from llmzoo.sentence_embedding import embed_ids, pad_batch

BATCH = 32


def input_ids(served: ServedModel, body: EmbeddingRequest) -> list[list[int]]:
    """Each input as token ids (text gets the tokenizer's [CLS] ... [SEP], as llmzoo.embed does)."""
    raw = body.input
    if isinstance(raw, str):
        raw = [raw]
    if not raw:
        raise APIError(400, "input is empty: give a string, a list of strings or token ids", param="input")
    if all(isinstance(x, int) for x in raw):
        raw = [raw]
    config = served.model.config
    ids = []
    for i, item in enumerate(raw):
        seq = served.tokenizer.encode(item) if isinstance(item, str) else list(item)
        if not seq:
            raise APIError(400, f"input[{i}] is empty", param="input")
        if any(not 0 <= t < config.vocab_size for t in seq):
            raise APIError(400, f"input[{i}] has token ids outside the vocabulary (0..{config.vocab_size - 1})",
                           param="input")
        if len(seq) > config.max_seq_len:
            raise APIError(400, f"input[{i}] is {len(seq)} tokens; {served.name} takes at most "
                                f"{config.max_seq_len}; shorten it", param="input", code="context_length_exceeded")
        ids.append(seq)
    return ids


def embed_all(served: ServedModel, ids: list[list[int]]) -> torch.Tensor:
    config = served.model.config
    pad_id = config.pad_token_id if config.pad_token_id is not None else 0
    out = []
    with served.lock:
        for start in range(0, len(ids), BATCH):
            batch, mask = pad_batch(ids[start:start + BATCH], pad_id, config.max_seq_len)
            out.append(embed_ids(served.model, batch, mask, served.pooling))
    return torch.cat(out)


def response(served: ServedModel, body: EmbeddingRequest, ids: list[list[int]], vectors: torch.Tensor) -> dict:
    data = []
    for index, vector in enumerate(vectors):
        if body.encoding_format == "base64":
            value = base64.b64encode(np.asarray(vector.numpy(), dtype="<f4").tobytes()).decode()
        else:
            value = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(len(seq) for seq in ids)
    return {"object": "list", "data": data, "model": served.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
