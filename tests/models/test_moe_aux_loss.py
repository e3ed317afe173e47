"""Mixtral's load-balancing loss (Switch eq. 4 over all layers' top-k slots) equals transformers' aux_loss
of MixtralForCausalLM(output_router_logits=True), with and without padding, through llmzoo.load."""

from __future__ import annotations

import pytest
import torch
import transformers

import llmzoo
from tests.parity.base import reference_model

TINY = dict(vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, num_local_experts=4, num_experts_per_tok=2)


@pytest.mark.parametrize("padded", [False, True])
def test_mixtral_aux_loss_equals_transformers(tmp_path, padded):
    ref = reference_model("MixtralForCausalLM", transformers.MixtralConfig(**TINY))
    ref.save_pretrained(tmp_path / "hf")
    ids = torch.randint(0, 128, (3, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :4] = 0  # left padding: those tokens' routes are left out of the loss
    with torch.no_grad():
        expected = ref(ids, attention_mask=mask, output_router_logits=True)
        got = llmzoo.load(tmp_path / "hf")(ids, attention_mask=mask)
    torch.testing.assert_close(got.logits[mask.bool()], expected.logits[mask.bool()])
    torch.testing.assert_close(got.aux_loss, expected.aux_loss)
    if padded:  # the padding matters to the value compared
        from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

        assert not torch.allclose(load_balancing_loss_func(expected.router_logits, 4, 2), expected.aux_loss)
