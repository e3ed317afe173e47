"""The model a finished run leaves in RUN_DIR/model: the trained weights, the run's tokenizer, and a
config whose special-token ids are that tokenizer's.

A recipe built `from:` a zoo model starts with the zoo model's token ids (GPT-2's 50256, T5's
eos=1), which mean nothing, or another token, in the run's own tokenizer; the exported config
takes each id's role (bos, eos, pad, decoder start) from the tokenizer instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from torch import nn

from llmzoo.config import ModelConfig


def export_run_model(model: nn.Module, directory: Path, tokenizer: Any, eos_id: int | None) -> Path:
    """Save the trained `model` (HF layout where one exists, else llmzoo's own, with a printed note)."""
    from llmzoo.convert.save import save_model

    model.config = run_token_ids(model.config, tokenizer, eos_id)
    saved = save_model(model, directory, format="auto", tokenizer=tokenizer)
    if saved.note:
        print(f"note: {saved.note}", file=sys.stderr)
    return saved.path


def run_token_ids(config: ModelConfig, tokenizer: Any, eos_id: int | None) -> ModelConfig:
    """`config` with bos/eos/pad/decoder-start ids by role from the run's tokenizer (eos falling back
    to the dataset's document separator, as the objectives do); an id with no such token becomes None.
    pad stays as trained where the forward reads it (positions that skip padding): changing it would
    change the model's outputs."""
    if tokenizer is None and eos_id is None:
        return config  # nothing known about the vocabulary beyond the config itself
    special: dict[str, int] = {}
    if tokenizer is not None:
        from llmzoo.objectives.special_tokens import special_tokens_from_tokenizer

        special = dict(special_tokens_from_tokenizer(tokenizer))
    if eos_id is not None:
        special.setdefault("eos", eos_id)
    new = {"pad": special.get("pad"), "bos": special.get("bos", special.get("cls")),
           "eos": special.get("eos", special.get("sep"))}
    old = {"pad": config.pad_token_id, "bos": config.bos_token_id, "eos": config.eos_token_id}
    if config.positions_skip_padding:
        new["pad"] = old["pad"]
    changes: dict[str, Any] = {f"{role}_token_id": _in_vocab(new[role], config) for role in new}
    start = config.decoder_start_token_id
    if start is not None:  # T5 starts decoding from pad, BART from eos: keep the role, take the new id
        role = next((r for r in ("pad", "eos", "bos") if old[r] == start), None)
        changes["decoder_start_token_id"] = _in_vocab(new[role] if role else start, config)
    return config.replace(**changes)


def _in_vocab(token_id: int | None, config: ModelConfig) -> int | None:
    return token_id if token_id is not None and 0 <= token_id < config.vocab_size else None
