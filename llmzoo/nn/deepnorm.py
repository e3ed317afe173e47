"""DeepNorm's initialisation (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers").

DeepNorm bounds a post-LN model's update by two changes: the block up-weights its residual,
x = LN(alpha * x + f(x)) (llmzoo.nn.block), and the sub-layers that carry values through are
initialised small: Xavier normal with gain beta for the feed-forward, v_proj and out_proj (o_proj),
gain 1 for q_proj and k_proj, whose scale softmax normalises away. Biases start at zero, as GLM-130B
states (Zeng et al. 2022, section 2.1). alpha and beta come from ModelConfig.deepnorm's rule.
"""

from __future__ import annotations

from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.nn.attention import Attention
from llmzoo.nn.mlp import MLP


def _xavier(linear: nn.Linear, gain: float) -> None:
    nn.init.xavier_normal_(linear.weight, gain=gain)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def deepnorm_init_(model: nn.Module, config: ModelConfig) -> None:
    """Re-initialise every attention and dense feed-forward of `model` as DeepNorm prescribes (in place).
    Embeddings, norms and heads keep the init they had."""
    beta = config.deepnorm_beta
    for module in model.modules():
        if isinstance(module, Attention):
            _xavier(module.q_proj, 1.0)
            _xavier(module.k_proj, 1.0)
            _xavier(module.v_proj, beta)
            _xavier(module.o_proj, beta)
        elif isinstance(module, MLP):
            for linear in (getattr(module, "gate_proj", None), module.up_proj, module.down_proj):
                if linear is not None:
                    _xavier(linear, beta)
