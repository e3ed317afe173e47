"""Greedy decoding with RETRO as the paper samples (Borgeaud et al. 2022, section 2.4, "Sampling"): once a
chunk C_u is complete its neighbours Ret(C_u) are retrieved, and the tokens from C_u's last one onward read
them. Only new chunks are retrieved; each step re-runs the whole sequence (no KV cache for CCA yet)."""

from __future__ import annotations

import torch

from llmzoo.errors import LlmzooError
from llmzoo.models.retro import Retro
from llmzoo.retro.database import NeighbourDB
from llmzoo.retro.retriever import retrieve


@torch.no_grad()
def generate(model: Retro, db: NeighbourDB, tokenizer, input_ids: torch.Tensor, max_new_tokens: int,
             k: int | None = None) -> torch.Tensor:
    """input_ids (B, T) in the database's tokenizer -> (B, T + max_new_tokens), greedy."""
    if db.chunk != model.config.chunk:
        raise LlmzooError(f"the database's chunks are {db.chunk} tokens but the model's CCA reads {model.config.chunk}")
    m, k = db.chunk, k or model.config.n_neighbours
    device = next(model.parameters()).device
    ids = input_ids.to(device)
    neighbours = retrieve(db, tokenizer, input_ids.cpu(), k)  # (B, T // m, k, 2m)
    for _ in range(max_new_tokens):
        done = ids.shape[1] // m
        if neighbours.shape[1] < done:  # chunk `done - 1` was just completed: retrieve for it
            new = retrieve(db, tokenizer, ids[:, neighbours.shape[1] * m : done * m].cpu(), k)
            neighbours = torch.cat((neighbours, new), dim=1)
        logits = model(ids, neighbours=neighbours.to(device)).logits[:, -1]
        ids = torch.cat((ids, logits.argmax(-1, keepdim=True)), dim=1)
    return ids
