"""ModelOutput: known fields read as None when a model did not produce them; a misspelt name raises."""

import pytest
import torch

from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model

DENSE = ModelConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=4, d_ff=64, max_seq_len=16)


def test_misspelt_field_raises_attribute_error():
    out = build_model(DENSE).eval()(torch.tensor([[1, 2, 3]]))
    with pytest.raises(AttributeError, match="did you mean 'logits'"):
        out.logit
    assert not hasattr(out, "hiden_states")


def test_known_fields_read_as_produced_or_none():
    ids = torch.tensor([[1, 2, 3]])
    out = build_model(DENSE).eval()(ids)
    assert out.logits.shape == (1, 3, 50) and out.logits is out["logits"]
    assert out.aux_loss is None and out.loss is None and out.hidden_states is None  # dense, no targets, not asked
    assert out.get("aux_loss") is None
    moe = build_model(DENSE.replace(n_experts=4, n_experts_per_token=2)).eval()(ids)
    assert moe.aux_loss is not None and torch.isfinite(moe.aux_loss)


def test_fields_can_be_set_and_read_back():
    out = build_model(DENSE).eval()(torch.tensor([[1, 2]]))
    out.custom_score = 3  # a caller's own field: set explicitly, so it reads back
    assert out.custom_score == 3 and out["custom_score"] == 3
