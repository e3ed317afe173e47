"""Tiny random transformers models (LLaMA, BERT, T5) saved as checkpoint directories, the way
tests/parity does, plus the peft configs that adapt them: shared by the tests against peft."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import peft
import torch
import transformers

from tests.parity.base import reference_model
from tests.parity.encoder_helpers import encoder_inputs
from tests.parity.seq2seq_helpers import seq2seq_inputs

LLAMA = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)
BERT = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
            max_position_embeddings=32, type_vocab_size=3)
T5 = dict(vocab_size=96, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_decoder_layers=2, num_heads=4,
          relative_attention_num_buckets=8, relative_attention_max_distance=20, decoder_start_token_id=0,
          initializer_factor=0.1, feed_forward_proj="gated-gelu", tie_word_embeddings=False)


@dataclass(frozen=True)
class Peer:
    cls_name: str
    config: Callable[[], transformers.PretrainedConfig]
    peft_targets: list[str]  # transformers' module names, as a peft user writes them
    zoo_targets: list[str]  # the same layers by llmzoo's names
    inputs: Callable[[transformers.PretrainedConfig], dict[str, torch.Tensor]]
    output: str = "logits"
    task_type: str | None = None


def _causal_inputs(cfg) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(0, cfg.vocab_size, (2, 10), generator=torch.Generator().manual_seed(1))}


PEERS = {
    "llama": Peer("LlamaForCausalLM", lambda: transformers.LlamaConfig(**LLAMA),
                  ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                  ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                  _causal_inputs, task_type="CAUSAL_LM"),
    # BertForMaskedLM's modules sit under "bert."; "dense" also adapts the MLM transform
    "bert": Peer("BertForMaskedLM", lambda: transformers.BertConfig(**BERT), ["query", "value", "dense"],
                 ["q_proj", "v_proj", "o_proj"], encoder_inputs),
    # the bare BertModel has no "bert." prefix; "dense" here includes the pooler
    "bert_bare": Peer("BertModel", lambda: transformers.BertConfig(**BERT), ["query", "key", "dense"],
                      ["k_proj", "up_proj", "down_proj"], encoder_inputs, output="last_hidden_state"),
    "t5": Peer("T5ForConditionalGeneration", lambda: transformers.T5Config(**T5), ["q", "k", "v", "o", "wi_0", "wi_1", "wo"],
               ["q_proj", "v_proj", "gate_proj", "down_proj"], seq2seq_inputs, task_type="SEQ_2_SEQ_LM"),
}
VARIANTS = {"lora": {}, "rslora": {"use_rslora": True}, "dora": {"use_dora": True}}


def base_checkpoint(peer: Peer, directory: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The randomised transformers model (saved to `directory`) and inputs for it."""
    cfg = peer.config()
    model = reference_model(peer.cls_name, cfg)
    model.save_pretrained(directory)
    return model, peer.inputs(cfg)


def reload(peer: Peer, directory: Path) -> torch.nn.Module:
    return getattr(transformers, peer.cls_name).from_pretrained(directory, attn_implementation="eager").eval()


def forward(model, peer: Peer, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    is_llmzoo = hasattr(model, "config") and type(model.config).__module__.startswith("llmzoo")
    extra = {"use_cache": False} if peer.task_type == "SEQ_2_SEQ_LM" and not is_llmzoo else {}
    return getattr(model(**inputs, **extra), peer.output)


def peft_adapter(peer, hf_model, variant: str, directory) -> torch.nn.Module:
    """A peft adapter with non-zero B (init_lora_weights=False), saved to `directory`."""
    torch.manual_seed(5)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=peer.peft_targets, init_lora_weights=False,
                             task_type=peer.task_type, **VARIANTS[variant])
    model = peft.get_peft_model(hf_model, config).eval()
    model.save_pretrained(directory)
    return model
