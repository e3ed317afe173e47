"""Prompt tuning, P-tuning, prefix tuning and LLaMA-Adapter against peft 0.21.2 on a tiny random
LLaMA: an adapter saved by peft loads into llmzoo with equal fp32 logits, and one saved by llmzoo
loads into peft (PeftModel.from_pretrained) with equal logits. peft's CAUSAL_LM logits of the
input-token methods include the n virtual positions first; llmzoo returns the real tokens' only,
so those are compared on the real positions."""

from __future__ import annotations

import peft
import pytest
import torch

import llmzoo
import llmzoo.peft
from tests.peft.peers import PEERS, base_checkpoint, reload

N = 3
CONFIGS = {  # method -> (peft config, llmzoo options, virtual positions in peft's logits)
    "prompt_tuning": (lambda: peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N),
                      {"num_virtual_tokens": N}, N),
    "p_tuning_mlp": (lambda: peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=N,
                                                      encoder_hidden_size=32),
                     {"num_virtual_tokens": N, "encoder_hidden_size": 32}, N),
    "p_tuning_lstm": (lambda: peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=N,
                                                       encoder_hidden_size=16, encoder_reparameterization_type="LSTM"),
                      {"num_virtual_tokens": N, "encoder_hidden_size": 16,
                       "encoder_reparameterization_type": "LSTM"}, N),
    "prefix_tuning": (lambda: peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N),
                      {"num_virtual_tokens": N}, 0),
    "prefix_projection": (lambda: peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N,
                                                          prefix_projection=True, encoder_hidden_size=24),
                          {"num_virtual_tokens": N, "prefix_projection": True, "encoder_hidden_size": 24}, 0),
    "adaption_prompt": (lambda: peft.AdaptionPromptConfig(task_type="CAUSAL_LM", adapter_len=N, adapter_layers=1),
                        {"adapter_len": N, "adapter_layers": 1}, 0),
}
METHOD = {"p_tuning_mlp": "p_tuning", "p_tuning_lstm": "p_tuning", "prefix_projection": "prefix_tuning"}


def _peft_model(hf_model, case: str):
    torch.manual_seed(5)
    model = peft.get_peft_model(hf_model, CONFIGS[case][0]())
    if case == "adaption_prompt":  # peft initialises the gate at zero (a no-op); open it to compare something
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("adaption_gate"):
                    p.fill_(0.7)
    return model.eval()


def _random_(model) -> None:
    """Move every adapter parameter off its init (a zero gate would make LLaMA-Adapter a no-op)."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in llmzoo.peft.trainable_parameters(model):
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)


@pytest.mark.parametrize("case", CONFIGS)
def test_peft_adapter_loads_into_llmzoo(tmp_path, case):
    peer = PEERS["llama"]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    reference = _peft_model(hf_model, case)
    reference.save_pretrained(tmp_path / "adapter")
    virtual = CONFIGS[case][2]
    with torch.no_grad():
        expected = reference(**inputs).logits
        assert expected.shape[1] == inputs["input_ids"].shape[1] + virtual
        model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
        torch.testing.assert_close(model(**inputs).logits, expected[:, virtual:])


@pytest.mark.parametrize("case", CONFIGS)
def test_llmzoo_adapter_loads_into_peft(tmp_path, case):
    peer = PEERS["llama"]
    _, inputs = base_checkpoint(peer, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    llmzoo.peft.apply(model, METHOD.get(case, case), **CONFIGS[case][1])
    _random_(model)
    with torch.no_grad():
        expected = model(**inputs).logits
    llmzoo.peft.save_adapter(model, tmp_path / "adapter")
    loaded = peft.PeftModel.from_pretrained(reload(peer, tmp_path / "base"), tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits[:, CONFIGS[case][2]:], expected)


@pytest.mark.parametrize("case", ["prompt_tuning", "prefix_tuning"])
def test_padded_batch_matches_peft(tmp_path, case):
    """A left-padded row: the attention mask is extended by n visible virtual tokens, as in peft."""
    peer = PEERS["llama"]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    reference = _peft_model(hf_model, case)
    reference.save_pretrained(tmp_path / "adapter")
    mask = torch.ones_like(inputs["input_ids"])
    mask[1, :3] = 0
    with torch.no_grad():
        expected = reference(input_ids=inputs["input_ids"], attention_mask=mask).logits[:, CONFIGS[case][2]:]
        model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
        # transformers' LLaMA counts positions over padding too; give llmzoo the same positions
        got = model(inputs["input_ids"], attention_mask=mask,
                    position_ids=torch.arange(10).expand(2, 10)).logits
    torch.testing.assert_close(got[mask.bool()], expected[mask.bool()])
