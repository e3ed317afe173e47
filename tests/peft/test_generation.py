"""Generation through llmzoo's KV cache with an adapter equals decoding by full forwards
(decoder: greedy generate_ids vs argmax of a full forward per step; encoder-decoder: cached vs
uncached greedy generate_seq2seq, the cross-attention keys/values computed through the adapter)."""

from __future__ import annotations

import torch

import llmzoo
import llmzoo.peft
from llmzoo.infer.generate import generate_ids
from llmzoo.infer.seq2seq import generate_seq2seq
from tests.peft.peers import PEERS, base_checkpoint, peft_adapter


def adapted(tmp_path, family: str, variant: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    peer = PEERS[family]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    peft_adapter(peer, hf_model, variant, tmp_path / "adapter")
    return llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter"), inputs


def test_decoder_greedy_generation_with_dora(tmp_path):
    model, inputs = adapted(tmp_path, "llama", "dora")
    prompts = inputs["input_ids"][:, :4].tolist()
    got = [g.token_ids for g in generate_ids(model, prompts, max_new_tokens=6)]
    for prompt, new in zip(prompts, got):
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(6):
                ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        assert new == ids[len(prompt):]


def test_seq2seq_cached_generation_with_lora(tmp_path):
    model, inputs = adapted(tmp_path, "t5", "lora")
    args = (model, inputs["input_ids"], inputs["attention_mask"])
    with torch.no_grad():
        cached = generate_seq2seq(*args, max_new_tokens=6, use_cache=True)
        full = generate_seq2seq(*args, max_new_tokens=6, use_cache=False)
    torch.testing.assert_close(cached, full, rtol=0, atol=0)
