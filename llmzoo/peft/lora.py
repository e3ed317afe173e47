"""LoRA (Hu et al. 2021, "Low-Rank Adaptation of Large Language Models") as a wrapper of nn.Linear.

    y = W x + b + s * B A dropout(x),   A (r, in) kaiming-uniform, B (out, r) zero, so y = W x + b at init.

s = alpha / r (Hu et al.) or alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023, "A Rank Stabilization
Scaling Factor for Fine-Tuning with LoRA": keeps the update's scale independent of the rank). With
DoRA (llmzoo.peft.dora) a magnitude vector rescales each output row.

The wrapper holds the base Linear's own `weight`/`bias` Parameters under the same names, so
`...q_proj.weight` stays a key of the state dict and base checkpoints load unchanged (DESIGN.md:
"PEFT is a transform"). Adapter names follow peft's: `lora_A.weight`, `lora_B.weight`,
`lora_magnitude_vector`. A QLoRA base (llmzoo.peft.nf4.NF4Linear) is kept whole as `quantized`
instead: its weight exists only as NF4 codes, dequantized where LoRA needs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.peft.dora import dora_delta, merged_weight, row_norm
from llmzoo.peft.nf4 import NF4Linear


@dataclass(frozen=True)
class LoraSpec:
    r: int
    alpha: float
    dropout: float = 0.0
    use_rslora: bool = False
    use_dora: bool = False

    @property
    def scaling(self) -> float:
        return self.alpha / math.sqrt(self.r) if self.use_rslora else self.alpha / self.r


class LoraLinear(nn.Module):
    def __init__(self, base: nn.Linear | NF4Linear, spec: LoraSpec) -> None:
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.quantized = base if isinstance(base, NF4Linear) else None
        if self.quantized is None:
            self.weight = base.weight  # the base's own Parameters: same names, same storage
        self.bias = base.bias
        self.spec = spec
        self.scaling = spec.scaling
        device = base.codes.device if self.quantized is not None else base.weight.device
        dtype = base.compute_dtype if self.quantized is not None else base.weight.dtype
        kw = dict(bias=False, device=device, dtype=dtype)
        self.lora_A = nn.Linear(self.in_features, spec.r, **kw)  # nn.Linear's init: kaiming-uniform(a=sqrt 5)
        self.lora_B = nn.Linear(spec.r, self.out_features, **kw)
        nn.init.zeros_(self.lora_B.weight)  # zero B: the adapted model starts as the base
        self.lora_dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.lora_magnitude_vector: nn.Parameter | None = None
        if spec.use_dora:  # m starts at ||W||_c, so W' = W at init
            with torch.no_grad():
                norm = row_norm(self.base_weight(), self.delta_weight())
            self.lora_magnitude_vector = nn.Parameter(norm)
        self.disabled = False  # llmzoo.peft.disabled(model): the base alone
        self.train(base.training)  # new sub-modules start in training mode: no dropout in an eval()'d model

    def base_weight(self) -> torch.Tensor:
        """W: the base's weight, dequantized for a QLoRA base."""
        return self.weight if self.quantized is None else self.quantized.dequantized()

    def delta_weight(self) -> torch.Tensor:
        """s B A: (out, in), what LoRA adds to the weight."""
        return self.scaling * (self.lora_B.weight @ self.lora_A.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias) if self.quantized is None else self.quantized(x)
        if self.disabled:
            return out
        dropped = self.lora_dropout(x)
        lora_out = self.lora_B(self.lora_A(dropped)) * self.scaling
        if self.lora_magnitude_vector is None:
            return out + lora_out
        return out + dora_delta(dropped, self.base_weight().to(x.dtype), self.lora_magnitude_vector, lora_out,
                                self.delta_weight())

    def merged(self) -> nn.Linear:
        """A plain nn.Linear computing what this adapter computes (its dropout aside)."""
        base = self.base_weight()
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=base.device, dtype=base.dtype)
        with torch.no_grad():
            delta = self.delta_weight()
            if self.lora_magnitude_vector is None:
                weight = base + delta
            else:
                weight = merged_weight(base, self.lora_magnitude_vector, delta)
            linear.weight.copy_(weight)
            if self.bias is not None:
                linear.bias = self.bias  # untouched by LoRA: keep the Parameter itself
        return linear.train(self.training)

    def extra_repr(self) -> str:
        s = self.spec
        kind = "DoRA" if s.use_dora else "rsLoRA" if s.use_rslora else "LoRA"
        kind = ("Q" + kind) if self.quantized is not None else kind
        return f"{self.in_features} -> {self.out_features}, {kind} r={s.r}, alpha={s.alpha}, dropout={s.dropout}"
