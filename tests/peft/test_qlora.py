"""QLoRA (Dettmers et al. 2023): NF4 levels and double quantization against the paper's construction
and torchao's NF4Tensor, the base's memory, and the adapter it trains being plain LoRA in peft's format."""

from __future__ import annotations

import logging

import peft
import pytest
import torch

import llmzoo
import llmzoo.peft
from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model
from llmzoo.peft.nf4 import ABSMAX_BLOCK, BLOCK, NF4_LEVELS, NF4Linear, dequantize_absmax, dequantize_nf4, quantize_nf4
from tests.peft.peers import PEERS, base_checkpoint, forward, reload

DECODER = ModelConfig(vocab_size=97, d_model=128, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=256, max_seq_len=64)


def weight(rows: int = 96, cols: int = 640, seed: int = 0) -> torch.Tensor:
    """Gaussian weights with an outlier row, as trained weights have; 96*640 is not a multiple of 64*256."""
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 0.02
    w[3] *= 8
    return w


def test_levels_are_the_papers_normal_quantiles():
    """Section 3: 2^k quantiles of N(0,1), 8 positive and 7 negative halves plus an exact zero, scaled to
    [-1, 1]; offset = (1 - 1/(2*15) + 1 - 1/(2*16)) / 2 as in QLoRA's reference code."""
    normal = torch.distributions.Normal(0.0, 1.0)
    offset = 1 - (1 / (2 * 15) + 1 / (2 * 16)) / 2
    positive = normal.icdf(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1].float())
    negative = -normal.icdf(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1].float())
    levels = torch.cat([negative, torch.zeros(1), positive]).sort().values
    torch.testing.assert_close(torch.tensor(NF4_LEVELS), levels / levels.max(), rtol=0, atol=2e-4)
    assert len(NF4_LEVELS) == 16 and 0.0 in NF4_LEVELS and NF4_LEVELS[0] == -1 and NF4_LEVELS[-1] == 1


def test_round_trip_error_within_half_a_level_gap():
    w = weight()
    state = quantize_nf4(w)
    back = dequantize_nf4(state, w.shape, torch.float32)
    blocks = torch.nn.functional.pad(w.flatten(), (0, -w.numel() % BLOCK)).view(-1, BLOCK)
    absmax = blocks.abs().amax(dim=1)
    restored = dequantize_absmax(state["absmax_codes"], state["absmax_scale"], state["absmax_mean"])
    levels = torch.tensor(NF4_LEVELS)
    half_gap = ((levels[1:] - levels[:-1]) / 2).max()
    # nearest level: at most half the widest gap times the block's absmax, plus the absmax's own error
    bound = absmax * half_gap + (absmax - restored).abs() + 1e-7
    err = (back.flatten() - w.flatten()).abs()
    err = torch.nn.functional.pad(err, (0, -err.numel() % BLOCK)).view(-1, BLOCK)
    assert (err <= bound.unsqueeze(1)).all()
    assert back.shape == w.shape and not torch.equal(back, w)


def test_double_quantized_absmax_reconstruction():
    """int8 codes of the mean-centred constants, one fp32 scale per 256: error <= half a step."""
    w = weight(rows=512, cols=512)  # 4096 blocks: 16 groups of 256 constants
    state = quantize_nf4(w)
    absmax = w.flatten().view(-1, BLOCK).abs().amax(dim=1)
    assert state["absmax_codes"].dtype == torch.int8 and state["absmax_codes"].numel() == absmax.numel()
    assert state["absmax_scale"].numel() == absmax.numel() // ABSMAX_BLOCK
    restored = dequantize_absmax(state["absmax_codes"], state["absmax_scale"], state["absmax_mean"])
    step = state["absmax_scale"].repeat_interleave(ABSMAX_BLOCK)
    assert ((restored - absmax).abs() <= step / 2 + 1e-7).all()
    torch.testing.assert_close(state["absmax_mean"], absmax.mean())


def test_codes_agree_with_torchao():
    """torchao's NF4Tensor (the same block sizes) picks the same 4-bit code for nearly every weight
    (it normalises by the double-quantized absmax and rounds its table to 4 decimals: ties differ)."""
    logging.getLogger("torchao").setLevel(logging.ERROR)  # it logs its CUDA kernels failing to load on CPU
    from torchao.quantization.quantize_.workflows.nf4.nf4_tensor import to_nf4

    w = weight(rows=256, cols=512)
    reference = to_nf4(w, BLOCK, ABSMAX_BLOCK)
    ours = quantize_nf4(w)["codes"]
    assert ours.shape == reference.quantized_data.shape
    assert (ours == reference.quantized_data).float().mean() > 0.999
    torch.testing.assert_close(torch.tensor(NF4_LEVELS), reference.nf4.float(), rtol=0, atol=1e-4)


def qlora_model(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(DECODER).eval()
    llmzoo.peft.apply(model, "qlora", target_modules=["q_proj", "v_proj", "down_proj"], r=4, lora_alpha=8)
    return model, torch.randint(0, DECODER.vocab_size, (2, 10))


def test_base_weights_take_under_0_3x_their_bf16_bytes():
    torch.manual_seed(0)
    plain = build_model(DECODER)
    bf16 = sum(m.weight.numel() * 2 for n, m in plain.named_modules()
               if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head"))
    model, _ = qlora_model()
    quantized = [m for m in model.modules() if isinstance(m, NF4Linear)]
    assert len(quantized) == DECODER.n_layers * 7  # every linear layer of the blocks, targeted or not
    stored = sum(m.storage_bytes() for m in quantized)
    assert stored <= 0.3 * bf16, stored / bf16
    assert not any(isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1].endswith("proj")
                   for n, m in model.named_modules() if ".lora_" not in n)


def test_training_step_moves_only_the_adapter():
    model, ids = qlora_model()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if ".lora_" not in k}
    optimizer = torch.optim.AdamW(llmzoo.peft.trainable_parameters(model), lr=1e-2)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if ".lora_" in n}
    model.train()
    for _ in range(2):
        model(ids, targets=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = model.state_dict()
    for k, v in frozen.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    assert all(after[k].abs().sum() > 0 for k in after if k.endswith("lora_B.weight"))


def test_qlora_adapter_is_peft_lora_and_loads_onto_an_unquantized_base(tmp_path):
    peer = PEERS["llama"]
    _, inputs = base_checkpoint(peer, tmp_path / "base")
    model = llmzoo.load(tmp_path / "base")
    llmzoo.peft.apply(model, "lora", quantize="nf4", target_modules=["q_proj", "v_proj"], r=4, lora_alpha=8)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(7)) * 0.1)
    llmzoo.peft.save_adapter(model, tmp_path / "adapter")
    assert llmzoo.peft.read_adapter_config(tmp_path / "adapter")["peft_type"] == "LORA"
    unquantized = llmzoo.load(tmp_path / "base", adapter=tmp_path / "adapter")
    assert not any(isinstance(m, NF4Linear) for m in unquantized.modules())
    loaded = peft.PeftModel.from_pretrained(reload(peer, tmp_path / "base"), tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(forward(unquantized, peer, inputs), forward(loaded, peer, inputs))
        for name, module in llmzoo.peft.lora_modules(unquantized).items():
            torch.testing.assert_close(module.lora_B.weight, model.get_submodule(name).lora_B.weight, rtol=0, atol=0)


@pytest.mark.parametrize("options", [{"quantize": "int3"}, {"quantize": True}])
def test_unknown_quantization_is_refused(options):
    from llmzoo.errors import LlmzooError

    model = build_model(DECODER)
    with pytest.raises(LlmzooError, match="quantize"):
        llmzoo.peft.apply(model, "lora", **options)
