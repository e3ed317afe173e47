"""GPT-2 (Radford et al. 2019): pre-LayerNorm, learned absolute positions, tanh GELU, tied head.

Checkpoint quirks: every projection is a `Conv1D` whose weight is stored (in, out), the
transpose of nn.Linear; q, k, v are one fused `c_attn` whose output columns are [q | k | v].
Old checkpoints also carry the causal-mask buffers `attn.bias` / `attn.masked_bias`.
"""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family, Tensors, Transform, cat_rows, qkv_sizes, transpose
from llmzoo.errors import CheckpointError

LAYER = "transformer.h.{i}."
ATTN = "layers.{i}.self_attn."


def _conv1d_qkv_to_zoo(ts: Tensors, c: ModelConfig) -> Tensors:
    # Conv1D (d, 3d) -> Linear rows (3d, d) -> q, k, v
    return [t.contiguous() for t in ts[0].t().split(qkv_sizes(c), dim=0)]


def _conv1d_qkv_to_hf(ts: Tensors, c: ModelConfig) -> Tensors:
    return [cat_rows(ts, c)[0].t().contiguous()]


def _bias_qkv_to_zoo(ts: Tensors, c: ModelConfig) -> Tensors:
    return [t.contiguous() for t in ts[0].split(qkv_sizes(c), dim=0)]


TRANSFORMS = (
    Transform((LAYER + "attn.c_attn.weight",), (ATTN + "q_proj.weight", ATTN + "k_proj.weight", ATTN + "v_proj.weight"),
              _conv1d_qkv_to_zoo, _conv1d_qkv_to_hf),
    Transform((LAYER + "attn.c_attn.bias",), (ATTN + "q_proj.bias", ATTN + "k_proj.bias", ATTN + "v_proj.bias"),
              _bias_qkv_to_zoo, cat_rows),
    Transform((LAYER + "attn.c_proj.weight",), (ATTN + "o_proj.weight",), transpose, transpose),
    Transform((LAYER + "mlp.c_fc.weight",), ("layers.{i}.mlp.up_proj.weight",), transpose, transpose),
    Transform((LAYER + "mlp.c_proj.weight",), ("layers.{i}.mlp.down_proj.weight",), transpose, transpose),
)

KEY_MAP = {
    "transformer.wte.weight": "embeddings.tokens.weight",
    "transformer.wpe.weight": "embeddings.positions.weight",
    "transformer.ln_f.weight": "norm.weight",
    "transformer.ln_f.bias": "norm.bias",
    "lm_head.weight": "lm_head.weight",
    LAYER + "ln_1.weight": "layers.{i}.attn_norm.weight",
    LAYER + "ln_1.bias": "layers.{i}.attn_norm.bias",
    LAYER + "ln_2.weight": "layers.{i}.mlp_norm.weight",
    LAYER + "ln_2.bias": "layers.{i}.mlp_norm.bias",
    LAYER + "attn.c_proj.bias": ATTN + "o_proj.bias",
    LAYER + "mlp.c_fc.bias": "layers.{i}.mlp.up_proj.bias",
    LAYER + "mlp.c_proj.bias": "layers.{i}.mlp.down_proj.bias",
}

# Causal-mask buffers that pre-2022 checkpoints saved alongside the weights.
IGNORE = (r"\.attn\.(bias|masked_bias)$",)


def check(hf: dict[str, Any]) -> None:
    if hf.get("add_cross_attention"):
        raise CheckpointError("GPT-2 with add_cross_attention=true (encoder-decoder use) is not supported")
    # reorder_and_upcast_attn only computes scores in fp32 (same math in fp32): accepted as is.


def gpt2_from_hf(hf: dict[str, Any]) -> ModelConfig:
    H.require(hf, "vocab_size")
    d = H.lookup(hf, "n_embd", "hidden_size")
    return ModelConfig(
        name=hf.get("_name_or_path") or "gpt2", family="gpt2", arch="decoder",
        vocab_size=hf["vocab_size"], d_model=d, n_layers=H.lookup(hf, "n_layer", "num_hidden_layers"),
        n_heads=H.lookup(hf, "n_head", "num_attention_heads"),
        d_ff=hf.get("n_inner") or 4 * d,
        max_seq_len=H.lookup(hf, "n_positions", "max_position_embeddings", default=1024),
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)), position="learned",
        attn_scale=None if hf.get("scale_attn_weights", True) else 1.0,
        attn_scale_inverse_layer=bool(hf.get("scale_attn_by_inverse_layer_idx", False)),
        qkv_bias=True, attn_out_bias=True,
        activation=H.activation(hf, "activation_function", "gelu_new"), mlp_gated=False, mlp_bias=True,
        norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5), norm_placement="pre",
        **H.token_ids(hf),
    )


def gpt2_to_hf(c: ModelConfig) -> dict[str, Any]:
    H.expect_classic_decoder(c, "gpt2", position="learned", position_offset=0, norm_placement="pre", final_norm=True,
                             parallel_residual=False, mlp_bias=True, qkv_bias=True, attn_out_bias=True,
                             embed_norm=False, lm_head_bias=False, layer_pattern=None, sliding_window=None)
    if c.attn_scale not in (None, 1.0):
        raise CheckpointError(f"a gpt2 checkpoint scales scores by 1/sqrt(head_dim) or 1, "
                              f"not attn_scale={c.attn_scale}")
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
        "n_embd": c.d_model, "n_layer": c.n_layers, "n_head": c.n_heads, "n_inner": c.d_ff,
        "n_positions": c.max_seq_len, "activation_function": H.activation_to_hf(c.activation),
        "layer_norm_epsilon": c.norm_eps, "scale_attn_weights": c.attn_scale is None,
        "scale_attn_by_inverse_layer_idx": c.attn_scale_inverse_layer, "reorder_and_upcast_attn": False,
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
    }


FAMILIES = (
    Family("gpt2", ("gpt2",), "GPT2LMHeadModel", gpt2_from_hf, gpt2_to_hf, KEY_MAP, TRANSFORMS,
           ignore=IGNORE, base_prefix="transformer.", check=check),
)
