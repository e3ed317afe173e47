"""Weight-only quantization of a float weight matrix: group-wise int4, per-output-channel int8.

int4: asymmetric (min-max) codes in [0, 15], one scale and one zero point per group of
`group` inputs of a row (GPTQ/AWQ's group-wise layout without their calibration; round to
nearest): w ~ scale * (q - 8) + zero with scale = (max - min) / 15, zero = min + 8 scale, the
tinygemm convention its kernel (llmzoo.quant.int4_planes) computes.

int8: symmetric, one scale per output row (LLM.int8()'s "vector-wise" weight quantization
without its outlier split; torchao's Int8WeightOnlyConfig default): w ~ scale * q, q in
[-127, 127], scale = max|w| / 127. Per row rather than per group because PyTorch's only native
int8 CPU kernel (`_weight_int8pack_mm`) takes one scale per row. Group-wise int8 would need two
int4 planes (measured on SmolLM2's 49152 x 576 head: 11.7 ms against 7.3 ms per row and 12 ms in
fp32) or one call per group (a 1536 x 576 layer in groups of 32: 0.73 ms against 0.12 ms), while
8 bits per row already keep perplexity within 1% (tests/quant).

Scales and zeros are rounded to bf16 *before* the codes are chosen, since the kernels read them
in bf16: the codes are then the best ones for the weights that are actually multiplied, and the
fp32 path (dequantize, then matmul) multiplies exactly the same weights.
"""

from __future__ import annotations

import torch

from llmzoo.quant.gguf_blocks import GroupedInts


def _bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float()


def quantize_int4(weight: torch.Tensor, group: int) -> GroupedInts:
    """(N, K) float weight -> 4-bit codes with a scale and offset per `group` inputs."""
    n, k = weight.shape
    w = weight.detach().float().reshape(n, k // group, group)
    lo, hi = w.amin(-1), w.amax(-1)
    scale = _bf16(torch.where(hi > lo, (hi - lo) / 15, torch.ones_like(hi)))
    zero = _bf16(lo + 8 * scale)
    codes = torch.round((w - zero[..., None]) / scale[..., None] + 8).clamp_(0, 15)
    # code q stands for scale * (q - 8) + zero = scale * q + (zero - 8 scale)
    return GroupedInts(codes.reshape(n, k).to(torch.uint8).numpy(), scale.numpy(),
                       (zero - 8 * scale).numpy(), bits=4, group=group)


def quantize_int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) float weight -> (int8 codes (N, K), bf16-representable fp32 scales (N,))."""
    w = weight.detach().float()
    peak = w.abs().amax(-1)
    scale = _bf16(torch.where(peak > 0, peak / 127, torch.ones_like(peak)))
    codes = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return codes, scale
