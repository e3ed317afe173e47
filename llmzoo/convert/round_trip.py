"""Refuse an HF save whose config.json would read back as a different model.

Each family's `config_to_hf` lists the fields its layout cannot express, but a list is only as
good as its last update: a field added to ModelConfig later (or one a family forgot) would be
dropped silently, and transformers would then run another model on the same weights (a BERT
switched to RoPE written as a plain BERT). So after writing config.json we read it back with the
family's own `config_from_hf` and compare: any field that changed is refused, by name.

Compared are the fields as the model uses them: None-means-derived fields by their derived value
(head_dim, n_kv_heads, ...), the two logit-scale fields as one multiplier. Not compared: identity
(name, family), and fields that change nothing the saved model computes (below).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.errors import CheckpointError

IDENTITY = ("name", "family")
# None in the model, a concrete value read back: the layout fills in what the model left open.
FILLED_BY_LAYOUT = ("decoder_start_token_id",)
# False in the model, True read back: the layout always has an output bias and a model without one
# is written with it zero (BART's final_logits_bias buffer), the same logits.
ZERO_BIAS_ADDED_BY_LAYOUT = ("lm_head_bias",)
# Positions without a table: max_seq_len bounds nothing in the forward.
TABLELESS = ("relative_bias", "none")
CLASSIFICATION_HEADS = ("seq_cls", "token_cls")
# RoPE's settings, unused unless position is "rope".
ROPE_SETTINGS = ("rope_base", "rope_fraction", "rope_scaling", "rope_interleaved")
# Attention's shape, meaningless in a model none of whose layers attends (Mamba).
ATTENTION_SHAPE = ("n_heads", "n_kv_heads", "head_dim")


def effective(config: Any) -> dict[str, Any]:
    """The config's fields as the model's forward uses them; a composite config (CLIP's towers) by
    its parts, flattened as "text.head_dim"."""
    if not isinstance(config, ModelConfig):
        values = {}
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if dataclasses.is_dataclass(value):
                values.update({f"{f.name}.{k}": v for k, v in effective(value).items()})
            elif f.name not in IDENTITY:
                values[f.name] = value
        return values
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in IDENTITY}
    values.update(head_dim=config.hd, n_kv_heads=config.kv_heads, embed_dim=config.emb_dim,
                  head_activation=config.head_activation or config.activation,
                  logit_scale=config.logit_multiplier, logit_scale_rsqrt_d=None,
                  ssm_dt_rank=config.ssm_rank, extra=dict(config.extra))
    if config.arch == "encoder_decoder":
        values["n_decoder_layers"] = config.decoder_layers
    if config.position in TABLELESS:
        values.pop("max_seq_len")
    if config.head not in CLASSIFICATION_HEADS:
        values.pop("n_labels")
    if config.position != "rope":
        for name in ROPE_SETTINGS:
            values.pop(name, None)
    if not config.has_mixer("attention"):
        for name in ATTENTION_SHAPE:
            values.pop(name)
    return values


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def round_trip_differences(config: Any, read_back: Any) -> dict[str, tuple[Any, Any]]:
    """field -> (the model's value, the value config.json reads back as), for fields that differ."""
    mine, back = effective(config), effective(read_back)
    return {name: (mine.get(name), back.get(name)) for name in mine.keys() | back.keys()
            if not _same(mine.get(name), back.get(name))
            and not (name.rsplit(".", 1)[-1] in FILLED_BY_LAYOUT and mine.get(name) is None)
            and not (name.rsplit(".", 1)[-1] in ZERO_BIAS_ADDED_BY_LAYOUT and mine.get(name) is False)}


def check_round_trip(config: Any, family_name: str, read_back: Any) -> None:
    differences = round_trip_differences(config, read_back)
    if differences:
        name = sorted(differences)[0]
        mine, back = differences[name]
        raise CheckpointError(f"the {family_name} layout cannot express {name}={mine!r}: its config.json would "
                              f"read back as {name}={back!r}" + (f" (and {len(differences) - 1} more field(s))"
                                                                 if len(differences) > 1 else ""))
