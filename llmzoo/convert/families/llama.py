"""LLaMA and its descendants that share its checkpoint layout: Mistral, Qwen2, Mixtral.

LLaMA (Touvron et al. 2023): pre-RMSNorm, SwiGLU, RoPE, no biases; LLaMA 2/3 add GQA
and (3.1) llama3 RoPE scaling. Mistral adds a sliding window, Qwen2 q/k/v biases,
Mixtral a top-2 sparse MoE feed-forward.
"""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError

LAYER = "model.layers.{i}."
DENSE_MLP = {
    LAYER + "mlp.gate_proj.weight": "layers.{i}.mlp.gate_proj.weight",
    LAYER + "mlp.up_proj.weight": "layers.{i}.mlp.up_proj.weight",
    LAYER + "mlp.down_proj.weight": "layers.{i}.mlp.down_proj.weight",
    LAYER + "mlp.gate_proj.bias": "layers.{i}.mlp.gate_proj.bias",
    LAYER + "mlp.up_proj.bias": "layers.{i}.mlp.up_proj.bias",
    LAYER + "mlp.down_proj.bias": "layers.{i}.mlp.down_proj.bias",
}
MOE_MLP = {
    LAYER + "block_sparse_moe.gate.weight": "layers.{i}.mlp.router.weight",
    LAYER + "block_sparse_moe.experts.{j}.w1.weight": "layers.{i}.mlp.experts.{j}.gate_proj.weight",
    LAYER + "block_sparse_moe.experts.{j}.w3.weight": "layers.{i}.mlp.experts.{j}.up_proj.weight",
    LAYER + "block_sparse_moe.experts.{j}.w2.weight": "layers.{i}.mlp.experts.{j}.down_proj.weight",
}
COMMON = {
    "model.embed_tokens.weight": "embeddings.tokens.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
    LAYER + "input_layernorm.weight": "layers.{i}.attn_norm.weight",
    LAYER + "post_attention_layernorm.weight": "layers.{i}.mlp_norm.weight",
    **{LAYER + f"self_attn.{p}.{w}": f"layers.{{i}}.self_attn.{p}.{w}"
       for p in ("q_proj", "k_proj", "v_proj", "o_proj") for w in ("weight", "bias")},
}


def _base(hf: dict[str, Any], family: str) -> dict[str, Any]:
    H.require(hf, "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    if hf.get("pretraining_tp", 1) not in (1, None):
        pass  # tensor-parallel slicing only changes how transformers computes, not the weights
    base, scaling = H.rope(hf)
    return dict(
        name=hf.get("_name_or_path") or family, family=family, arch="decoder",
        vocab_size=hf["vocab_size"], d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"], n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        head_dim=hf.get("head_dim"), d_ff=hf["intermediate_size"],
        max_seq_len=hf.get("max_position_embeddings", 2048), tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        position="rope", rope_base=base, rope_scaling=scaling, activation=H.activation(hf),
        mlp_gated=True, norm="rmsnorm", norm_eps=hf.get("rms_norm_eps", 1e-6), **H.token_ids(hf),
    )


# What the LLaMA checkpoint layout (and its descendants) always is; a config that differs
# cannot be written in it without transformers silently computing something else.
LLAMA_LAYOUT: dict[str, Any] = dict(
    arch="decoder", head="lm", position="rope", rope_fraction=1.0, rope_interleaved=False, norm="rmsnorm",
    norm_unit_offset=False, norm_placement="pre", final_norm=True, parallel_residual=False, mlp_gated=True,
    activation="silu", embed_scale=None, embed_norm=False, embed_dim=None, type_vocab_size=0, attn_scale=None,
    attn_logit_softcap=None, lm_head_bias=False, logit_scale=None, logit_scale_rsqrt_d=False, share_layers=False,
    layer_pattern=None,
)


def _base_to_hf(c: ModelConfig, model_type: str, arch: str) -> dict[str, Any]:
    H.expect(c, model_type, **LLAMA_LAYOUT)
    return {
        "architectures": [arch], "model_type": model_type, "vocab_size": c.vocab_size,
        "hidden_size": c.d_model, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.kv_heads, "head_dim": c.hd, "intermediate_size": c.d_ff,
        "max_position_embeddings": c.max_seq_len, "tie_word_embeddings": c.tie_embeddings,
        "hidden_act": "silu" if c.activation == "silu" else c.activation, "rms_norm_eps": c.norm_eps,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
        **H.rope_to_hf(c),
    }


def llama_from_hf(hf: dict[str, Any]) -> ModelConfig:
    bias = bool(hf.get("attention_bias", False))
    return ModelConfig(**_base(hf, "llama"), qkv_bias=bias, attn_out_bias=bias, mlp_bias=bool(hf.get("mlp_bias", False)))


def llama_to_hf(c: ModelConfig) -> dict[str, Any]:
    if c.qkv_bias != c.attn_out_bias:
        raise CheckpointError("LLaMA checkpoints have either all or no attention biases")
    return {**_base_to_hf(c, "llama", "LlamaForCausalLM"), "attention_bias": c.qkv_bias, "mlp_bias": c.mlp_bias}


def mistral_from_hf(hf: dict[str, Any]) -> ModelConfig:
    return ModelConfig(**_base(hf, "mistral"), sliding_window=hf.get("sliding_window"))


def mistral_to_hf(c: ModelConfig) -> dict[str, Any]:
    return {**_base_to_hf(c, "mistral", "MistralForCausalLM"), "sliding_window": c.sliding_window}


def qwen2_from_hf(hf: dict[str, Any]) -> ModelConfig:
    window = hf.get("sliding_window") if hf.get("use_sliding_window") else None
    if window is not None and hf.get("max_window_layers", hf["num_hidden_layers"]) < hf["num_hidden_layers"]:
        raise CheckpointError("Qwen2 with sliding window on only some layers is not supported yet")
    return ModelConfig(**_base(hf, "qwen2"), qkv_bias=True, sliding_window=window)


def qwen2_to_hf(c: ModelConfig) -> dict[str, Any]:
    out = _base_to_hf(c, "qwen2", "Qwen2ForCausalLM")
    out.update(use_sliding_window=c.sliding_window is not None, sliding_window=c.sliding_window,
               max_window_layers=c.n_layers)
    return out


def mixtral_from_hf(hf: dict[str, Any]) -> ModelConfig:
    return ModelConfig(
        **_base(hf, "mixtral"), sliding_window=hf.get("sliding_window"),
        n_experts=hf.get("num_local_experts", 8), n_experts_per_token=hf.get("num_experts_per_tok", 2),
        moe_aux_loss_coef=hf.get("router_aux_loss_coef", 0.001),
    )


def mixtral_to_hf(c: ModelConfig) -> dict[str, Any]:
    out = _base_to_hf(c, "mixtral", "MixtralForCausalLM")
    out.update(sliding_window=c.sliding_window, num_local_experts=c.n_experts,
               num_experts_per_tok=c.n_experts_per_token, router_aux_loss_coef=c.moe_aux_loss_coef)
    return out


IGNORE = (r"rotary_emb\.inv_freq$",)

FAMILIES = (
    Family("llama", ("llama",), "LlamaForCausalLM", llama_from_hf, llama_to_hf, {**COMMON, **DENSE_MLP}, ignore=IGNORE, base_prefix="model."),
    Family("mistral", ("mistral",), "MistralForCausalLM", mistral_from_hf, mistral_to_hf, {**COMMON, **DENSE_MLP}, ignore=IGNORE, base_prefix="model."),
    Family("qwen2", ("qwen2",), "Qwen2ForCausalLM", qwen2_from_hf, qwen2_to_hf, {**COMMON, **DENSE_MLP}, ignore=IGNORE, base_prefix="model."),
    Family("mixtral", ("mixtral",), "MixtralForCausalLM", mixtral_from_hf, mixtral_to_hf, {**COMMON, **MOE_MLP}, ignore=IGNORE, base_prefix="model."),
)
