"""Houlsby and Pfeiffer bottleneck adapters by the papers' properties. AdapterHub's `adapters` 1.3.0,
the peer these would be checked against, pins transformers ~= 4.57.6 and does not import beside
transformers 5.23 (checked: ImportError on huggingface_hub.HfFolder), so there is no live reference
here: parameter counts from the papers' definition, placement, identity at init, cached decoding."""

from __future__ import annotations

import json

import pytest
import torch

import llmzoo
import llmzoo.peft
from llmzoo.cli import main
from llmzoo.peft.bottleneck import BottleneckLinear
from tests.peft.peers import PEERS, base_checkpoint, forward

ADAPTERS_PER_LAYER = {"houlsby": 2, "pfeiffer": 1}  # Houlsby: after attention and after the FFN; Pfeiffer: after the FFN


@pytest.mark.parametrize("method", ADAPTERS_PER_LAYER)
@pytest.mark.parametrize("family", ["llama", "bert", "t5"])
def test_parameter_count_placement_and_identity_at_init(tmp_path, family, method):
    peer = PEERS[family]
    _, inputs = base_checkpoint(peer, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    with torch.no_grad():
        base = forward(model, peer, inputs)
    r = 8
    llmzoo.peft.apply(model, method, r=r)
    c = model.config
    layers = c.n_layers + (getattr(c, "n_decoder_layers", None) or c.n_layers if c.arch == "encoder_decoder" else 0)
    d = c.d_model
    trainable = sum(p.numel() for p in llmzoo.peft.trainable_parameters(model))
    assert trainable == ADAPTERS_PER_LAYER[method] * layers * (2 * d * r + d + r)  # 2dr + d + r per adapter
    places = {n.rsplit(".", 2)[-2] + "." + n.rsplit(".", 1)[-1] for n in llmzoo.peft.adapter_modules(model)}
    assert places == ({"self_attn.o_proj", "mlp.down_proj"} if method == "houlsby" else {"mlp.down_proj"})
    with torch.no_grad():
        torch.testing.assert_close(forward(model, peer, inputs), base, rtol=0, atol=0)


def test_adapter_adds_a_residual_bottleneck_to_the_sublayer_output():
    """h + W_up f(W_down h + b_down) + b_up, h the wrapped projection's output (Houlsby's figure 2)."""
    linear = torch.nn.Linear(16, 12)
    adapter = BottleneckLinear(linear, r=3, non_linearity="relu")
    torch.nn.init.normal_(adapter.adapter_up.weight)
    x = torch.randn(5, 16)
    h = linear(x)
    expected = h + adapter.adapter_up(torch.relu(adapter.adapter_down(h)))
    torch.testing.assert_close(adapter(x), expected)


def test_info_and_merge_refusal_through_the_cli(tmp_path, capsys):
    peer = PEERS["bert"]
    _, inputs = base_checkpoint(peer, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    llmzoo.peft.apply(model, "pfeiffer", r=4)
    llmzoo.peft.save_adapter(model, tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["llmzoo_method"] == "pfeiffer" and "peft_type" not in config
    capsys.readouterr()
    assert main(["adapter", "info", str(tmp_path / "adapter"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modules"] == model.config.n_layers and info["r"] == 4 and info["non_linearity"] == "relu"
    assert main(["adapter", "merge", str(tmp_path / "base"), str(tmp_path / "adapter"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "cannot be merged" in err and "\n" not in err
    assert not (tmp_path / "out").exists()
