"""NF4 weights with double quantization, QLoRA's frozen base (Dettmers et al. 2023, "QLoRA:
Efficient Finetuning of Quantized LLMs").

- 4-bit NormalFloat: each block of 64 weights is divided by its absolute maximum and rounded to the
  nearest of 16 levels that are quantiles of N(0, 1) rescaled to [-1, 1] (section 3, "4-bit
  NormalFloat"; the values of its appendix E, an exact zero included). Two codes share one byte.
- Double quantization (section 3): the fp32 absmax constants, one per 64 weights (0.5 bit per
  weight), are quantized again: their mean subtracted, then 8 bits each with one fp32 scale per
  block of 256 constants (0.127 bit per weight). The paper stores the second level as FP8; this
  uses symmetric int8 as torchao's NF4Tensor does, with the same block sizes.

So a weight costs 4 + 8/64 + 32/(64*256) = 4.127 bits, 0.258x of bf16. The layer computes in the
input's dtype (bf16 or fp32): the weight is dequantized per forward, as in QLoRA, and never trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# QLoRA's NF4 levels (appendix E; bitsandbytes' table): asymmetric so that zero is exactly representable
NF4_LEVELS = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
              -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
              0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
              0.7229568362236572, 1.0)
BLOCK, ABSMAX_BLOCK = 64, 256


def quantize_nf4(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """A weight -> its NF4 codes (two per byte) and double-quantized absmax constants."""
    flat = weight.detach().float().flatten()
    flat = F.pad(flat, (0, -flat.numel() % BLOCK))  # zeros: their code is exactly 0
    blocks = flat.view(-1, BLOCK)  # (n_blocks, 64)
    absmax = blocks.abs().amax(dim=1)  # (n_blocks,)
    normalized = blocks / absmax.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(1)
    levels = torch.tensor(NF4_LEVELS, device=flat.device)
    codes = torch.bucketize(normalized, (levels[1:] + levels[:-1]) / 2).to(torch.uint8).flatten()  # nearest level
    packed = (codes[0::2] << 4) | codes[1::2]
    return {"codes": packed, **quantize_absmax(absmax)}


def quantize_absmax(absmax: torch.Tensor) -> dict[str, torch.Tensor]:
    """Double quantization: mean-centred constants as int8 with one fp32 scale per 256 of them."""
    mean = absmax.mean()
    centred = F.pad(absmax - mean, (0, -absmax.numel() % ABSMAX_BLOCK)).view(-1, ABSMAX_BLOCK)
    scale = centred.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127  # (n_groups,)
    q = torch.round(centred / scale.unsqueeze(1)).clamp(-127, 127).to(torch.int8).flatten()[: absmax.numel()]
    return {"absmax_codes": q, "absmax_scale": scale, "absmax_mean": mean}


def dequantize_absmax(absmax_codes: torch.Tensor, absmax_scale: torch.Tensor, absmax_mean: torch.Tensor) -> torch.Tensor:
    n = absmax_codes.numel()
    padded = F.pad(absmax_codes.float(), (0, -n % ABSMAX_BLOCK)).view(-1, ABSMAX_BLOCK)
    return (padded * absmax_scale.unsqueeze(1)).flatten()[:n] + absmax_mean


def dequantize_nf4(state: dict[str, torch.Tensor], shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """NF4 codes and constants -> the weight (shape, dtype) they approximate."""
    packed = state["codes"]
    codes = torch.stack((packed >> 4, packed & 0xF), dim=1).flatten().long()  # (n,) in 0..15
    levels = torch.tensor(NF4_LEVELS, device=packed.device)
    absmax = dequantize_absmax(state["absmax_codes"], state["absmax_scale"], state["absmax_mean"])
    values = levels[codes].view(-1, BLOCK) * absmax.unsqueeze(1)
    return values.flatten()[: shape.numel()].view(shape).to(dtype)


class NF4Linear(nn.Module):
    """A frozen linear layer whose weight is stored as NF4 (its bias, if any, as it was)."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight_shape, self.compute_dtype = base.weight.shape, base.weight.dtype
        for name, tensor in quantize_nf4(base.weight).items():
            self.register_buffer(name, tensor.to(base.weight.device))
        self.bias = base.bias
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.train(base.training)

    def dequantized(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        state = {k: getattr(self, k) for k in ("codes", "absmax_codes", "absmax_scale", "absmax_mean")}
        return dequantize_nf4(state, self.weight_shape, dtype or self.compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized(x.dtype), bias)

    def storage_bytes(self) -> int:
        """Bytes the quantized weight occupies (codes and constants; the bias aside)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, NF4 (block {BLOCK}, double-quantized absmax)"


def quantize_linears(model: nn.Module, names: list[str]) -> None:
    """Replace the named nn.Linear layers of `model` by NF4Linear (in place)."""
    for name in names:
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, NF4Linear(getattr(owner, attr)))


def dequantize_linears(model: nn.Module) -> None:
    """Replace every NF4Linear of `model` by the nn.Linear it approximates (in place)."""
    for name, module in [(n, m) for n, m in model.named_modules() if isinstance(m, NF4Linear)]:
        linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                           device=module.codes.device, dtype=module.compute_dtype)
        with torch.no_grad():
            linear.weight.copy_(module.dequantized())
        linear.bias = module.bias
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, linear.train(module.training))
