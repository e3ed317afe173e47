"""Prompt tuning, P-tuning, prefix tuning and LLaMA-Adapter against peft 0.21.2 on tiny random
LLaMA (CAUSAL_LM), BERT (SEQ_CLS and FEATURE_EXTRACTION) and T5 (SEQ_2_SEQ_LM), wherever peft has
the method (LLaMA-Adapter: LLaMA only): an adapter saved by peft loads into llmzoo with equal fp32
outputs, and one saved by llmzoo loads into peft (PeftModel.from_pretrained) with equal outputs.
peft's per-token outputs of the input-token methods on decoders and encoders include the n virtual
positions first; llmzoo returns the real tokens' only, so those are compared on the real positions
(a classifier's logits, which read the first virtual token through BERT's pooler, are compared whole)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import peft
import pytest
import torch
import transformers

import llmzoo
import llmzoo.peft
from tests.parity.base import reference_model
from tests.peft.peers import BERT, LLAMA, PEERS, T5

N = 3


@dataclass(frozen=True)
class Family:
    cls_name: str
    config: Callable[[], transformers.PretrainedConfig]
    inputs: Callable
    task_type: str
    output: str
    per_token: bool  # does peft's output carry the virtual input positions (decoder/encoder outputs)?


FAMILIES = {
    "llama": Family("LlamaForCausalLM", lambda: transformers.LlamaConfig(**LLAMA), PEERS["llama"].inputs,
                    "CAUSAL_LM", "logits", True),
    "bert_cls": Family("BertForSequenceClassification", lambda: transformers.BertConfig(**BERT, num_labels=3),
                       PEERS["bert"].inputs, "SEQ_CLS", "logits", False),
    # peft's FEATURE_EXTRACTION prompt learning drops token_type_ids (with a warning); llmzoo keeps
    # them (the virtual positions get type 0), so this peer is fed one segment
    "bert": Family("BertModel", lambda: transformers.BertConfig(**BERT),
                   lambda cfg: {k: v for k, v in PEERS["bert"].inputs(cfg).items() if k != "token_type_ids"},
                   "FEATURE_EXTRACTION", "last_hidden_state", True),
    "t5": Family("T5ForConditionalGeneration", lambda: transformers.T5Config(**T5), PEERS["t5"].inputs,
                 "SEQ_2_SEQ_LM", "logits", False),
}
CASES = {  # case -> (peft config class and fields, llmzoo method and options, adds input positions)
    "prompt_tuning": (peft.PromptTuningConfig, {"num_virtual_tokens": N}, "prompt_tuning", {"num_virtual_tokens": N},
                      True),
    "p_tuning_mlp": (peft.PromptEncoderConfig, {"num_virtual_tokens": N, "encoder_hidden_size": 32}, "p_tuning",
                     {"num_virtual_tokens": N, "encoder_hidden_size": 32}, True),
    "p_tuning_lstm": (peft.PromptEncoderConfig, {"num_virtual_tokens": N, "encoder_hidden_size": 16,
                                                 "encoder_reparameterization_type": "LSTM"}, "p_tuning",
                      {"num_virtual_tokens": N, "encoder_hidden_size": 16, "encoder_reparameterization_type": "LSTM"},
                      True),
    "prefix_tuning": (peft.PrefixTuningConfig, {"num_virtual_tokens": N}, "prefix_tuning", {"num_virtual_tokens": N},
                      False),
    "prefix_projection": (peft.PrefixTuningConfig, {"num_virtual_tokens": N, "prefix_projection": True,
                                                    "encoder_hidden_size": 24}, "prefix_tuning",
                          {"num_virtual_tokens": N, "prefix_projection": True, "encoder_hidden_size": 24}, False),
    "adaption_prompt": (peft.AdaptionPromptConfig, {"adapter_len": N, "adapter_layers": 1}, "adaption_prompt",
                        {"adapter_len": N, "adapter_layers": 1}, False),
}
PAIRS = [(f, c) for f in FAMILIES for c in CASES if c != "adaption_prompt" or f == "llama"]


def _base(family: Family, directory):
    cfg = family.config()
    model = reference_model(family.cls_name, cfg)
    model.save_pretrained(directory)
    return model, family.inputs(cfg)


def _reload(family: Family, directory):
    return getattr(transformers, family.cls_name).from_pretrained(directory, attn_implementation="eager").eval()


def _output(model, family: Family, inputs) -> torch.Tensor:
    peft_model = isinstance(model, peft.PeftModel)
    extra = {"use_cache": False} if family.task_type == "SEQ_2_SEQ_LM" and peft_model else {}
    return getattr(model(**inputs, **extra), family.output)


def _real(output: torch.Tensor, family: Family, case: str) -> torch.Tensor:
    """peft's output on the real tokens' positions."""
    return output[:, N:] if family.per_token and CASES[case][4] else output


def _peft_model(hf_model, family: Family, case: str):
    torch.manual_seed(5)
    config_cls, fields = CASES[case][:2]
    model = peft.get_peft_model(hf_model, config_cls(task_type=family.task_type, **fields))
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


@pytest.mark.parametrize("family, case", PAIRS)
def test_peft_adapter_loads_into_llmzoo(tmp_path, family, case):
    fam = FAMILIES[family]
    hf_model, inputs = _base(fam, tmp_path / "base")
    with torch.no_grad():
        base = _output(hf_model, fam, inputs)
    reference = _peft_model(hf_model, fam, case)
    reference.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        expected = _real(_output(reference, fam, inputs), fam, case)
        assert expected.shape == base.shape and not torch.allclose(expected, base, atol=1e-4)
        model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
        torch.testing.assert_close(_output(model, fam, inputs), expected)


@pytest.mark.parametrize("family, case", PAIRS)
def test_llmzoo_adapter_loads_into_peft(tmp_path, family, case):
    fam = FAMILIES[family]
    _, inputs = _base(fam, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    llmzoo.peft.apply(model, CASES[case][2], **CASES[case][3])
    _random_(model)
    with torch.no_grad():
        expected = _output(model, fam, inputs)
    llmzoo.peft.save_adapter(model, tmp_path / "adapter")
    loaded = peft.PeftModel.from_pretrained(_reload(fam, tmp_path / "base"), tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(_real(_output(loaded, fam, inputs), fam, case), expected)


@pytest.mark.parametrize("case", ["prompt_tuning", "prefix_tuning"])
def test_padded_batch_matches_peft(tmp_path, case):
    """A left-padded row: the attention mask is extended by n visible virtual tokens, as in peft."""
    fam = FAMILIES["llama"]
    hf_model, inputs = _base(fam, tmp_path / "base")
    reference = _peft_model(hf_model, fam, case)
    reference.save_pretrained(tmp_path / "adapter")
    mask = torch.ones_like(inputs["input_ids"])
    mask[1, :3] = 0
    with torch.no_grad():
        expected = reference(input_ids=inputs["input_ids"], attention_mask=mask).logits
        expected = _real(expected, fam, case)
        model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
        # transformers' LLaMA counts positions over padding too; give llmzoo the same positions
        got = model(inputs["input_ids"], attention_mask=mask,
                    position_ids=torch.arange(10).expand(2, 10)).logits
    torch.testing.assert_close(got[mask.bool()], expected[mask.bool()])


GRADS = {  # case -> (peft parameter name suffix, llmzoo parameter name suffix) of the trained tensors
    "prompt_tuning": [("prompt_encoder.default.embedding.weight", "virtual_tokens.encoder.weight")],
    "prefix_tuning": [("prompt_encoder.default.embedding.weight", "virtual_tokens.encoder.weight")],
    "adaption_prompt": [("layers.1.self_attn.adaption_prompt", "layers.1.self_attn.prompt_attention.adaption_prompt"),
                        ("layers.1.self_attn.adaption_gate", "layers.1.self_attn.prompt_attention.adaption_gate")],
}


@pytest.mark.parametrize("family, case", [("llama", c) for c in GRADS] + [("t5", "prefix_tuning"),
                                                                          ("bert_cls", "prompt_tuning")])
def test_training_step_matches_peft(tmp_path, family, case):
    """Same batch, same loss and the same gradient of the trained tensors as peft in training mode
    (no dropout in these configs), so training moves both the same way."""
    fam = FAMILIES[family]
    hf_model, inputs = _base(fam, tmp_path / "base")
    reference = _peft_model(hf_model, fam, case)
    reference.save_pretrained(tmp_path / "adapter")
    model = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
    ours = _output(model, fam, inputs)
    theirs = _real(_output(reference, fam, inputs), fam, case)
    targets = torch.randint(0, ours.shape[-1], ours.shape[:-1], generator=torch.Generator().manual_seed(2))
    losses = [torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1))
              for out in (theirs, ours)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[1], losses[0])
    ref_params = {n: p for n, p in reference.named_parameters() if p.requires_grad}
    params = dict(model.named_parameters())
    pairs = GRADS[case] + ([("classifier.modules_to_save.default.weight", "classifier.weight")]
                           if fam.task_type == "SEQ_CLS" else [])
    for peft_suffix, zoo_name in pairs:
        (peft_name,) = [n for n in ref_params if n.endswith(peft_suffix)]
        torch.testing.assert_close(params[zoo_name].grad, ref_params[peft_name].grad, msg=lambda m: f"{zoo_name}: {m}")
