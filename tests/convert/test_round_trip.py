"""An HF save either writes a config.json that reads back as the same model, or is refused.

The property, over every converter family's zoo configs at toy size and a set of field changes a
recipe or a user could make: `llmzoo.save(format="hf")` then reading only config.json back (not
llmzoo_config.json, which a transformers user does not have) gives the model's config, field by
field as the forward uses them; otherwise the save raised CheckpointError naming a field.
Before the round-trip check, each family's hand-written list decided, and fields it forgot were
dropped silently (e.g. a BERT switched to RoPE, a GPT-2 given a sliding window).
"""

from __future__ import annotations

import json

import pytest

import llmzoo
from llmzoo.convert.round_trip import round_trip_differences
from llmzoo.convert.save import family_for_config
from llmzoo.errors import CheckpointError, ConfigError
from llmzoo.models.zoo import get_config
from tests.convert.test_zoo_roundtrip import shrink

BASES = ["gpt2", "smollm2-135m-instruct", "bert-base", "t5-small", "falcon-7b", "pythia-160m", "opt-125m"]
CHANGES = [
    dict(position="rope"), dict(position="alibi"), dict(sliding_window=4), dict(attn_logit_softcap=30.0),
    dict(parallel_residual=True), dict(norm="rmsnorm"), dict(mlp_gated=True, activation="silu"),
    dict(qkv_bias=True), dict(attn_out_bias=True), dict(lm_head_bias=True), dict(embed_scale=2.0),
    dict(logit_scale=0.5), dict(norm_eps=1e-3), dict(tie_embeddings=False), dict(rope_base=1234.0),
]


def _variant(base: str, change: dict):
    """The changed config and its model, or None where llmzoo itself rejects the change (RoPE theta
    without RoPE, RoPE in the encoder-decoder): not a case of this property."""
    try:
        config = shrink(get_config(base)).replace(**change)
        return config, llmzoo.build_model(config)
    except ConfigError:
        return None


@pytest.mark.parametrize("base", BASES)
def test_save_reads_back_the_same_config_or_refuses(base, tmp_path):
    refused = written = 0
    for i, change in enumerate(CHANGES):
        variant = _variant(base, change)
        if variant is None:
            continue
        config, model = variant
        out = tmp_path / str(i)
        try:
            llmzoo.save(model, out, format="hf")
        except CheckpointError as e:
            assert "\n" not in str(e)
            refused += 1
            continue
        written += 1
        hf = json.loads((out / "config.json").read_text())
        read_back = family_for_config(config).config_from_hf(hf)
        assert round_trip_differences(config, read_back) == {}, (base, change)
    assert written + refused > 0


def test_a_bert_switched_to_rope_is_refused_by_name(tmp_path):
    # BERT's config.json has no RoPE: written as is, transformers would run learned positions that
    # are not in the file (randomly initialised). BERT's own field list missed it.
    model = llmzoo.build_model(shrink(get_config("bert-base")).replace(position="rope"))
    with pytest.raises(CheckpointError, match="position='rope'"):
        llmzoo.save(model, tmp_path, format="hf")


def test_a_composite_config_is_compared_tower_by_tower():
    # CLIP's two towers: a change in either is named with its tower; the layout's own read-back is equal.
    from dataclasses import replace

    from llmzoo.convert.families import family_by_name
    from llmzoo.models.clip_config import CLIPConfig

    config = CLIPConfig(name="clip-vit-base-patch32")
    family = family_by_name("clip")
    assert round_trip_differences(config, family.config_from_hf(family.config_to_hf(config))) == {}
    changed = replace(config, vision=replace(config.vision, patch_size=16), text=config.text.replace(norm_eps=1e-3))
    assert set(round_trip_differences(config, changed)) == {"vision.patch_size", "text.norm_eps"}
