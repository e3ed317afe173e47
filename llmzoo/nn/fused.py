"""Run-time fusion of projections that read the same input (q/k/v; gate/up).

Checkpoints keep q_proj, k_proj, v_proj (and gate_proj, up_proj) apart, as Hugging Face names
them (DESIGN.md); training may still run them as one GEMM over the concatenated weights: one
larger matrix product keeps a CPU's cores busier than three small ones. Same parameters, same
math; only the summation order inside the GEMM may differ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.nn.frozen_cast import cast_frozen_concatenation, frozen_casts_active


def can_fuse(*linears: nn.Module) -> bool:
    """Only plain nn.Linear layers with plain tensors (not LoRA wrappers, not TP-sharded DTensors)."""
    return all(type(m) is nn.Linear and type(m.weight) in (torch.Tensor, nn.Parameter) for m in linears)


def fused_linear(x: torch.Tensor, linears: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, ...]:
    weight = None
    if frozen_casts_active() and torch.is_autocast_enabled(x.device.type):  # llmzoo.nn.frozen_cast
        weight = cast_frozen_concatenation([m.weight for m in linears], linears[0],
                                           torch.get_autocast_dtype(x.device.type))
    if weight is None:
        weight = torch.cat([m.weight for m in linears])
    biases = [m.bias for m in linears]
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat([b if b is not None else x.new_zeros(m.out_features) for b, m in zip(biases, linears)])
    return F.linear(x, weight, bias).split([m.out_features for m in linears], dim=-1)
