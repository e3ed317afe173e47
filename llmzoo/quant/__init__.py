"""Quantized weights that matmuls run on (README, "Quantized weights").

    llmzoo.load("model.Q4_K_M.gguf", quant="gguf")   # the file's own blocks, not dequantized to fp32
    llmzoo.load("smollm2-135m-instruct", quant="int4")  # any model: group-wise int4 (group 32)

gguf_blocks: GGUF block formats -> (codes, scales, offsets); int_quant: int8/int4 of float weights;
int4_planes: codes on PyTorch's int4 CPU kernel; linear: the QuantLinear module; apply: the swaps.
"""

from llmzoo.quant.apply import INT4_GROUP, QUANT_METHODS, check_quant, quantize_from_gguf, quantize_model
from llmzoo.quant.linear import QuantLinear

__all__ = ["INT4_GROUP", "QUANT_METHODS", "QuantLinear", "check_quant", "quantize_from_gguf", "quantize_model"]
