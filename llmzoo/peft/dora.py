"""DoRA (Liu et al. 2024, "Weight-Decomposed Low-Rank Adaptation").

The adapted weight W' = m * (W + s B A) / ||W + s B A||_c splits into a trainable magnitude m
(one value per output feature) and a direction. ||.||_c is the L2 norm of each output row of the
(out, in) weight, as peft defines it. Section 4.3 of the paper treats the norm as a constant during
backpropagation (detached), which saves memory and is what peft computes; we do the same, so
gradients match peft's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def row_norm(weight: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """||W + delta|| per output row: (out, in) -> (out,)."""
    return torch.linalg.norm(weight + delta, dim=1)


def dora_delta(x: torch.Tensor, weight: torch.Tensor, magnitude: torch.Tensor, lora_out: torch.Tensor,
               delta: torch.Tensor) -> torch.Tensor:
    """What DoRA adds to the base output W x + b: (m/n - 1) W x + (m/n) s B A x.

    x is the (dropped-out) input, lora_out = s B A x, delta = s B A (out, in) for the norm."""
    scale = magnitude / row_norm(weight, delta).detach()  # (out,), norm held constant (paper 4.3)
    return (scale - 1) * F.linear(x, weight) + scale * lora_out


def merged_weight(weight: torch.Tensor, magnitude: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The single weight W' = m / ||W + delta||_c * (W + delta) that computes what the adapter does."""
    adapted = weight + delta
    return (magnitude / torch.linalg.norm(adapted, dim=1)).unsqueeze(1) * adapted
