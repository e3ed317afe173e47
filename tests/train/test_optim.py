"""AdamW parameter groups and the warmup + decay learning-rate schedule."""

from __future__ import annotations

import math

import pytest
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model
from llmzoo.train.optim import lr_at, no_decay_names, param_groups
from llmzoo.train.recipe import recipe_from_dict


def _recipe(**kw):
    return recipe_from_dict({"model": "gpt-2", "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 10, "max_steps": 110, **kw})


def test_warmup_is_linear_and_reaches_the_peak():
    r = _recipe()
    assert [lr_at(s, r) for s in (0, 4, 9)] == pytest.approx([1e-4, 5e-4, 1e-3])


@pytest.mark.parametrize("decay", ["cosine", "linear"])
def test_decay_falls_monotonically_to_min_lr(decay):
    r = _recipe(decay=decay)
    after = [lr_at(s, r) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert after[0] == pytest.approx(1e-3) and after[-1] == pytest.approx(1e-4)
    assert lr_at(500, r) == pytest.approx(1e-4)  # flat after decay_steps
    midpoint = lr_at(60, r)  # half way: cosine and linear both give the mean of lr and min_lr
    assert midpoint == pytest.approx(0.5 * (1e-3 + 1e-4))
    quarter = lr_at(35, r)
    expected = 1e-4 + 9e-4 * (0.5 * (1 + math.cos(math.pi / 4)) if decay == "cosine" else 0.75)
    assert quarter == pytest.approx(expected)


def test_constant_schedule():
    r = _recipe(decay="constant")
    assert lr_at(50, r) == lr_at(109, r) == 1e-3


def test_no_weight_decay_on_norms_biases_and_embeddings():
    config = ModelConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, d_ff=32, qkv_bias=True, norm="layernorm",
                         position="learned", max_seq_len=8, tie_embeddings=False)
    model = build_model(config)
    skip = no_decay_names(model)
    by_name = dict(model.named_parameters())
    embeddings = {n for n, m in model.named_modules() if isinstance(m, nn.Embedding)}
    for name, p in by_name.items():
        module = name.rsplit(".", 1)[0]
        expected = p.ndim == 1 or module in embeddings
        assert (name in skip) == expected, name
    decay, plain = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert len(decay["params"]) + len(plain["params"]) == len(by_name)
    assert any(p is by_name["lm_head.weight"] for p in decay["params"])  # an untied head is a matrix like any other
