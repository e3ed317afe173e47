"""Every zoo config whose family has a transformers layout is, after `llmzoo.save`, the model
transformers builds from the saved directory: same fp32 logits.

Each config is shrunk (64 wide, 2 layers, a 128-token vocabulary) with every behavioural field kept:
attention and logit scaling, norms, positions, GQA/MQA ratio, head_dim when set, windows, MoE, heads.
Shrinking goes through `dataclasses.replace`, as a recipe's `model.d_model: 64` does, so a value
derived from the full width and stored as a number (T5's d_model**-0.5 logit scale once was) fails here.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.convert.families import all_families
from llmzoo.errors import CheckpointError, ConfigError
from llmzoo.models.zoo import catalog_names, get_config
from tests.parity.base import randomise

D, VOCAB, SEQ = 64, 128, 12

# Configs of a converter family that its transformers layout cannot express: llmzoo.save refuses the
# HF format for them (format="auto" writes llmzoo's own directory instead).
NO_HF_LAYOUT: dict[str, str] = {
    # Brown et al. 2020 Table 2.1: d_model 5140 with 40 heads of 128; GPT-2's layout derives d_model / n_heads
    "gpt-3-13b": "head_dim 128 is not d_model / n_heads",
    "webgpt-13b": "GPT-3 13B's shape: head_dim 128 is not d_model / n_heads",
    # Taylor et al. 2022: no biases, LayerNorms included; transformers' OPT always has LayerNorm biases
    "galactica-120b": "bias-free LayerNorms",
    # Brown et al. 2020: dense and locally banded attention layers alternate; GPT-2's layout has no window
    **{name: "alternating dense / banded attention" for name in (
        *(f"gpt-3-{s}" for s in ("125m", "350m", "760m", "1.3b", "2.7b", "6.7b", "175b")),
        "webgpt-760m", "webgpt-175b", "instructgpt-1.3b", "instructgpt-175b")},
}


def _converter_configs() -> list[str]:
    families = {f.name for f in all_families().values()}
    names = []
    for name in catalog_names():
        config = get_config(name, missing_ok=True)
        if config is not None and config.family in families:
            names.append(name)
    return names


def _small_id(token_id: int | None) -> int | None:
    return None if token_id is None else token_id % VOCAB


def shrink(c: ModelConfig) -> ModelConfig:
    """`c` at toy size, every behavioural field as it was."""
    heads = 4
    kv = None if c.n_kv_heads is None else (1 if c.n_kv_heads == 1 else (heads if c.kv_heads == c.n_heads else 2))
    changes = dict(
        d_model=D, n_layers=2, n_heads=heads, n_kv_heads=kv, d_ff=int(c.d_ff * D / c.d_model), vocab_size=VOCAB, max_seq_len=64,
        head_dim=None if c.head_dim is None else (D // heads if c.head_dim * c.n_heads == c.d_model else 8),
        n_decoder_layers=None if c.n_decoder_layers is None else 2,
        embed_dim=None if c.embed_dim is None else D // 2,
        sliding_window=None if c.sliding_window is None else 5,  # shorter than SEQ, so the window bites
        n_experts=min(c.n_experts, 4), n_experts_per_token=min(c.n_experts_per_token, 2) if c.n_experts else 2,
        **{f"{role}_token_id": _small_id(getattr(c, f"{role}_token_id"))
           for role in ("pad", "bos", "eos", "decoder_start")},
    )
    if c.rope_scaling is not None and c.rope_scaling.original_max_seq_len:
        changes["rope_scaling"] = c.rope_scaling.__class__(**{**c.rope_scaling.__dict__, "original_max_seq_len": 16})
    return c.replace(**changes)


def _logits(out) -> torch.Tensor:
    for name in ("logits", "prediction_logits", "last_hidden_state"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    raise AssertionError(f"no logits in {type(out).__name__}")


@pytest.mark.parametrize("name", _converter_configs())
def test_zoo_config_saves_as_its_transformers_model(name, tmp_path):
    config = shrink(get_config(name))
    torch.manual_seed(0)
    model = llmzoo.build_model(config).eval()
    if name in NO_HF_LAYOUT:
        with pytest.raises(CheckpointError):
            llmzoo.save(model, tmp_path / "refused", format="hf")
        return
    randomise(model, seed=0, std=0.05)
    llmzoo.save(model, tmp_path, format="hf")
    arch = json.loads((tmp_path / "config.json").read_text())["architectures"][0]
    ref = getattr(transformers, arch).from_pretrained(tmp_path, attn_implementation="eager").eval()

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, SEQ), generator=gen)
    with torch.no_grad():
        if config.arch == "encoder_decoder":
            dec = torch.randint(0, VOCAB, (2, SEQ - 3), generator=gen)
            ours, theirs = model(ids, dec).logits, ref(input_ids=ids, decoder_input_ids=dec).logits
        else:
            ours, theirs = _logits(model(ids)), _logits(ref(input_ids=ids))
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("spec", [
    {"from": "t5-base", "d_model": D, "n_layers": 2, "n_heads": 4, "head_dim": 16, "d_ff": 128},  # docs/objectives.md
    {"from": "t5-small", "d_model": D, "n_layers": 2, "n_heads": 4, "head_dim": 16, "d_ff": 128,
     "logit_scale": D**-0.5},  # a recipe that spells T5's factor out as a number
])
def test_recipe_that_narrows_t5_still_saves_a_t5(spec, tmp_path):
    """A pretrain recipe's `model:` block (resolve_model_config) with another d_model keeps T5's head."""
    from llmzoo.train.model import resolve_model_config

    config = resolve_model_config(spec, vocab_size=VOCAB, eos_id=None, name="run")
    assert config.logit_multiplier == pytest.approx(D**-0.5)
    torch.manual_seed(0)
    model = llmzoo.build_model(config).eval()
    llmzoo.save(model, tmp_path, format="hf")
    ref = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ids, dec = torch.randint(0, VOCAB, (2, SEQ)), torch.randint(0, VOCAB, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(model(ids, dec).logits, ref(input_ids=ids, decoder_input_ids=dec).logits)


def test_a_logit_scale_and_the_d_model_rule_together_are_refused():
    with pytest.raises(ConfigError, match="logit_scale_rsqrt_d"):
        get_config("t5-small").replace(logit_scale=0.5)
