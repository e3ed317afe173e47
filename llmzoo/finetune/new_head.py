"""A task head on a pretrained encoder whose checkpoint has none (all-MiniLM-L6-v2 ships the
encoder and pooler only): the head is initialised fresh, as BERT's fine-tuning does (Devlin et al.
2019, section 4: "the only new parameters introduced during fine-tuning are classification layer
weights"), and a note says so, instead of the checkpoint failing to load.
"""

from __future__ import annotations

import sys

from torch import nn

from llmzoo.errors import LlmzooError

# Modules build_heads attaches for some head; the rest of an encoder is the same for every head.
HEAD_MODULES = ("pooler", "mlm", "lm_head", "nsp", "classifier", "qa", "rtd")


def attach_head(model: nn.Module, head: str, n_labels: int = 2) -> list[str]:
    """Give the encoder `model` the head `head` in place (model.config updated); the encoder's
    weights and any pooler it has are kept, the head's new modules start from the model's own init.
    Returns the names of the new modules (empty when the model already had this head)."""
    from llmzoo.models.build import build_model

    config = model.config
    if config.head == head and (head not in ("seq_cls", "token_cls") or config.n_labels == n_labels):
        return []
    if config.arch != "encoder":
        raise LlmzooError(f"a {head} head goes on an encoder; {config.name} is a {config.arch} with head {config.head!r}")
    changes = {"head": head, "n_labels": n_labels}
    if head == "seq_cls" and config.pooler is None:
        changes["pooler"] = "tanh"  # BERT's pooled [CLS]; the checkpoint has none, so it starts fresh too
    target = config.replace(**changes)
    fresh = build_model(target)
    added = []
    for name in HEAD_MODULES:
        mine, theirs = getattr(model, name, None), getattr(fresh, name, None)
        if theirs is None and mine is not None:
            delattr(model, name)  # e.g. an MLM transform a classifier does not use
        elif theirs is not None and (mine is None or _shapes(mine) != _shapes(theirs)):
            setattr(model, name, theirs.to(next(model.parameters()).device))
            added.append(name)
    model.config = target
    if added:
        print(f"note: {config.name} has no trained {head} head; {', '.join(added)} initialised fresh "
              f"(n_labels={n_labels}) and trained by this fine-tune", file=sys.stderr)
    return added


def _shapes(module: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in module.parameters()]
