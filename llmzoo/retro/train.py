"""Training RETRO on a database's own corpus (Borgeaud et al. 2022, section 2.5 / 4): rows are cut at chunk
boundaries, each chunk's neighbours come from the database with the row's own text excluded, and the loss is
next-token cross-entropy. A short loop of its own: the library's training loop (llmzoo.train) samples rows
from token shards without knowing where they lie in the corpus, which the exclusion needs.

    db = shakespeare_db("macbeth", tokenizer)       # or load_db(path) from `llmzoo retro index`
    losses = train_retro(Retro(config), db, steps=200, seq_len=128)
"""

from __future__ import annotations

import torch

from llmzoo.errors import LlmzooError
from llmzoo.models.retro import Retro
from llmzoo.retro.database import NeighbourDB, build_db
from llmzoo.retro.retriever import retrieve_db_rows


def shakespeare_db(play: str, tokenizer, *, tokenizer_id: str = "gpt2", chunk: int = 64, max_tokens: int | None = None,
                   embedder: str = "all-minilm-l6-v2") -> NeighbourDB:
    """A database over one play of the offline Shakespeare asset (`shksprdata/texts/<play>_gut.txt`)."""
    from llmzoo.assets import asset_path

    text = asset_path("shakespeare", f"shksprdata/texts/{play}_gut.txt").read_text(encoding="utf-8", errors="replace")
    tokens = tokenizer.encode(text)[:max_tokens]
    return build_db(tokens, tokenizer, tokenizer_id=tokenizer_id, embedder=embedder, chunk=chunk)


def train_retro(model: Retro, db: NeighbourDB, *, steps: int = 100, seq_len: int = 128, batch_size: int = 8,
                lr: float = 1e-3, seed: int = 0) -> list[float]:
    """AdamW on next-token loss over random chunk-aligned rows of the database's corpus; returns the losses."""
    m, k = db.chunk, model.config.n_neighbours
    if seq_len % m or seq_len < m:
        raise LlmzooError(f"seq_len must be a positive multiple of the chunk {m}, got {seq_len}")
    n_starts = (len(db.tokens) - seq_len - 1) // m + 1
    if n_starts < 1 or len(db.keys) < k + seq_len // m + 2:
        raise LlmzooError(f"the database's {len(db.tokens)} tokens are too few for rows of {seq_len} and {k} neighbours")
    device = next(model.parameters()).device  # the database stays on the host; each batch moves
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        starts = torch.randint(0, n_starts, (batch_size,), generator=generator) * m
        rows = db.tokens[starts[:, None] + torch.arange(seq_len + 1)]  # (B, T + 1)
        neighbours = retrieve_db_rows(db, starts, seq_len, k).to(device)  # (B, T // m, k, 2m)
        rows = rows.to(device)
        loss = model(rows[:, :-1], neighbours=neighbours, targets=rows[:, 1:]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses
