"""What a model returns: a dict with attribute access (`out.logits`, `out["logits"]`)."""

from __future__ import annotations

import difflib
from typing import Any

# Every field some model or head in llmzoo returns. A field in this set that a given model did not
# produce reads as None (`out.aux_loss` on a dense model, `out.loss` without targets); any other name
# raises AttributeError, so a typo such as `out.logit` fails loudly instead of yielding None.
FIELDS = frozenset({
    "logits", "loss", "last_hidden_state", "hidden_states", "aux_loss", "pooler_output",
    "encoder_last_hidden_state", "nsp_logits", "start_logits", "end_logits", "rtd_logits", "sbo_logits",
    "z_loss", "encoder_aux_loss", "decoder_aux_loss", "encoder_z_loss", "decoder_z_loss",  # MoE routers
})


class ModelOutput(dict):
    """Fields used across the zoo: logits (B, T, V), last_hidden_state (B, T, D),
    hidden_states (tuple, if asked), aux_loss (MoE load balancing), plus head-specific
    outputs (e.g. nsp_logits, start_logits). A known field the model did not produce reads
    as None; an unknown name raises AttributeError."""

    def __getattr__(self, name: str) -> Any:
        if name in self:
            return self[name]
        if name in FIELDS:
            return None
        close = difflib.get_close_matches(name, sorted(FIELDS | set(self)), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; it has {', '.join(sorted(self))}"
        raise AttributeError(f"ModelOutput has no field {name!r}{hint}")

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value
