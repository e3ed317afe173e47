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


def can_fuse(*linears: nn.Module) -> bool:
    """Only plain nn.Linear layers with plain tensors (not LoRA wrappers, not TP-sharded DTensors)."""
    return all(type(m) is nn.Linear and type(m.weight) in (torch.Tensor, nn.Parameter) for m in linears)


def fused_linear(x: torch.Tensor, linears: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, ...]:
    weight = _frozen_concatenation(linears) if _frozen_under_autocast(x, linears) else None
    if weight is None:
        weight = torch.cat([m.weight for m in linears])
    biases = [m.bias for m in linears]
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat([b if b is not None else x.new_zeros(m.out_features) for b, m in zip(biases, linears)])
    return F.linear(x, weight, bias).split([m.out_features for m in linears], dim=-1)


def _frozen_under_autocast(x: torch.Tensor, linears: tuple[nn.Linear, ...]) -> bool:
    return (torch.is_autocast_enabled(x.device.type) and not torch.compiler.is_compiling()
            and not any(m.weight.requires_grad for m in linears))


def _frozen_concatenation(linears: tuple[nn.Linear, ...]) -> torch.Tensor:
    """The frozen weights' concatenation in autocast's dtype, kept on the first module while none of
    them changes (llmzoo.nn.frozen_cast: the same values autocast's cast of the concatenation gives)."""
    dtype = torch.get_autocast_dtype(linears[0].weight.device.type)
    key = (dtype, *((m.weight.data_ptr(), m.weight._version) for m in linears))
    cached = linears[0].__dict__.get("_fused_frozen_cast")
    if cached is None or cached[0] != key:
        cached = (key, torch.cat([m.weight.detach() for m in linears]).to(dtype))
        linears[0].__dict__["_fused_frozen_cast"] = cached
    return cached[1]
