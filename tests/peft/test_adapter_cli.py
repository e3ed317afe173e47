"""`llmzoo adapter info` and `llmzoo adapter merge` on an adapter written by peft."""

from __future__ import annotations

import json

import torch
import transformers

from llmzoo.cli import main
from tests.peft.peers import PEERS, base_checkpoint, peft_adapter


def test_info_and_merge_of_a_peft_dora_adapter(tmp_path, capsys):
    peer = PEERS["llama"]
    hf_model, inputs = base_checkpoint(peer, tmp_path / "base")
    reference = peft_adapter(peer, hf_model, "dora", tmp_path / "adapter")
    trainable, _ = reference.get_nb_trainable_parameters()

    assert main(["adapter", "info", str(tmp_path / "adapter"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["method"], info["r"], info["lora_alpha"]) == ("DoRA", 4, 8)
    assert info["target_modules"] == sorted(peer.peft_targets)
    assert info["trainable_parameters"] == trainable
    assert info["modules"] == len(reference.targeted_module_names)
    assert main(["adapter", "info", str(tmp_path / "adapter")]) == 0
    assert f"{trainable:,}" in capsys.readouterr().out

    out = tmp_path / "merged"
    assert main(["adapter", "merge", str(tmp_path / "base"), str(tmp_path / "adapter"), str(out)]) == 0
    merged = transformers.LlamaForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, reference(**inputs).logits)
