"""Which modules an adapter wraps, chosen by name as peft chooses them.

A list of names matches module-name suffixes at a dot boundary ("q_proj" matches
"layers.0.self_attn.q_proj"); a string is a regular expression the whole module name must match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from llmzoo.errors import LlmzooError

# Read by the fused cross-entropy directly (its weight, not its forward): an adapter there would be skipped.
UNSUPPORTED = ("lm_head",)


def matches(name: str, targets: str | Sequence[str]) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def find_targets(model: nn.Module, targets: str | Sequence[str]) -> list[str]:
    """Names of the nn.Linear modules `targets` selects; a target that selects none is an error."""
    if isinstance(targets, str):
        try:
            re.compile(targets)
        except re.error as e:
            raise LlmzooError(f"target_modules {targets!r} is not a valid regular expression ({e})") from None
    else:
        targets = list(targets)
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise LlmzooError(f"target_modules must be a regex or a non-empty list of module names, got {targets!r}")
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] not in UNSUPPORTED]
    patterns = [targets] if isinstance(targets, str) else targets
    unmatched = [t for t in patterns if not any(matches(n, t if isinstance(targets, str) else [t]) for n in linears)]
    skipped = [n for n, _ in model.named_modules() if n.split(".")[-1] in UNSUPPORTED and matches(n, targets)]
    if skipped:
        raise LlmzooError(f"LoRA on {skipped[0]} is not supported yet (llmzoo's fused loss reads its weight directly)")
    if unmatched:
        valid = sorted({n.split(".")[-1] for n in linears})
        family = getattr(getattr(model, "config", None), "family", None) or "this"
        raise LlmzooError(f"target module(s) {', '.join(map(repr, unmatched))} match no linear layer of the "
                          f"{family} model; valid names: {', '.join(valid)}")
    return [n for n in linears if matches(n, targets)]
