"""Jamba (Lieber et al. 2024, AI21): transformers' JambaForCausalLM <-> a hybrid decoder whose per-layer
spec interleaves attention and Mamba mixers and dense and MoE feed-forwards.

Layer i has attention where i % attn_layer_period == attn_layer_offset (one in eight in Jamba-v0.1),
else a Mamba mixer with RMSNorms on dt, B and C; its feed-forward is a MoE where
i % expert_layer_period == expert_layer_offset (every other layer), else a SwiGLU MLP. No positions at
all (the Mamba layers carry order), GQA without biases, top-k router weights not renormalised.
Both patterns are one period long, so each is one cycled tuple in ModelConfig.mixers / ffns.
"""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError

LAYER = "model.layers.{i}."
MIXER_TENSORS = ("A_log", "D", "conv1d.weight", "conv1d.bias", "in_proj.weight", "in_proj.bias", "x_proj.weight",
                 "dt_proj.weight", "dt_proj.bias", "out_proj.weight", "out_proj.bias",
                 "dt_layernorm.weight", "b_layernorm.weight", "c_layernorm.weight")
MLP = ("gate_proj", "up_proj", "down_proj")

KEY_MAP = {
    "model.embed_tokens.weight": "embeddings.tokens.weight",
    "model.final_layernorm.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
    LAYER + "input_layernorm.weight": "layers.{i}.attn_norm.weight",
    LAYER + "pre_ff_layernorm.weight": "layers.{i}.mlp_norm.weight",
    **{LAYER + f"self_attn.{p}.weight": f"layers.{{i}}.self_attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj")},
    **{LAYER + f"mamba.{t}": f"layers.{{i}}.mixer.{t}" for t in MIXER_TENSORS},
    **{LAYER + f"feed_forward.{p}.weight": f"layers.{{i}}.mlp.{p}.weight" for p in MLP},
    LAYER + "feed_forward.router.weight": "layers.{i}.mlp.router.weight",
    **{LAYER + f"feed_forward.experts.{{j}}.{p}.weight": f"layers.{{i}}.mlp.experts.{{j}}.{p}.weight" for p in MLP},
}


def _pattern(period: int, offset: int, hit: str, other: str, field: str) -> tuple[str, ...]:
    if not 0 <= offset < period:
        raise CheckpointError(f"Jamba {field}_offset={offset} must be in [0, {field}_period={period})")
    return tuple(hit if i == offset else other for i in range(period))


def _period(spec: tuple[str, ...], hit: str, what: str) -> tuple[int, int]:
    """(period, offset) of a cycled tuple with exactly one `hit`: the only patterns Jamba's config expresses."""
    hits = [i for i, kind in enumerate(spec) if kind == hit]
    if len(hits) != 1:
        raise CheckpointError(f"a Jamba checkpoint has one {what} layer per period; this spec {spec} has {len(hits)}")
    return len(spec), hits[0]


def jamba_from_hf(hf: dict[str, Any]) -> ModelConfig:
    H.require(hf, "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    d = hf["hidden_size"]
    experts = hf.get("num_experts", hf.get("num_local_experts", 16))
    rank = hf.get("mamba_dt_rank", "auto")
    mixers = _pattern(hf.get("attn_layer_period", 8), hf.get("attn_layer_offset", 4), "attention", "mamba", "attn_layer")
    ffns = _pattern(hf.get("expert_layer_period", 2), hf.get("expert_layer_offset", 1), "moe", "dense", "expert_layer")
    return ModelConfig(
        name=hf.get("_name_or_path") or "jamba", family="jamba", arch="decoder",
        vocab_size=hf["vocab_size"], d_model=d, n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"], n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        d_ff=hf["intermediate_size"], max_seq_len=hf.get("max_position_embeddings", 262144), position="none",
        activation=H.activation(hf), mlp_gated=True, mixers=mixers,
        ffns=ffns if experts > 1 else ("dense",),  # transformers builds an MLP wherever num_experts is 1
        n_experts=experts if experts > 1 else 0, n_experts_per_token=hf.get("num_experts_per_tok", 2),
        moe_renormalize=False, moe_aux_loss_coef=hf.get("router_aux_loss_coef", 0.001),
        ssm_state_size=hf.get("mamba_d_state", 16), ssm_expand=hf.get("mamba_expand", 2),
        ssm_conv_kernel=hf.get("mamba_d_conv", 4), ssm_dt_rank=None if rank == "auto" else int(rank),
        ssm_conv_bias=bool(hf.get("mamba_conv_bias", True)), ssm_proj_bias=bool(hf.get("mamba_proj_bias", False)),
        ssm_inner_norms=True, norm="rmsnorm", norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)), attn_dropout=hf.get("attention_dropout", 0.0),
        **H.token_ids(hf),
    )


def jamba_to_hf(c: ModelConfig) -> dict[str, Any]:
    H.expect(c, "jamba", arch="decoder", head="lm", position="none", norm="rmsnorm", norm_unit_offset=False,
             norm_placement="pre", final_norm=True, parallel_residual=False, mlp_gated=True, mlp_bias=False,
             qkv_bias=False, attn_out_bias=False, attn_scale=None, sliding_window=None, layer_pattern=None,
             attn_logit_softcap=None, embed_scale=None, embed_norm=False, embed_dim=None, type_vocab_size=0,
             lm_head_bias=False, logit_scale=None, logit_scale_rsqrt_d=False, share_layers=False,
             ssm_inner_norms=True, moe_renormalize=False)
    if c.hd * c.n_heads != c.d_model:
        raise CheckpointError(f"a Jamba checkpoint needs head_dim = d_model / n_heads (this config: head_dim={c.hd})")
    attn_period, attn_offset = _period(c.mixers or ("attention",), "attention", "attention")
    if c.n_experts:
        expert_period, expert_offset = _period(c.ffns or ("moe",), "moe", "MoE")
    else:
        expert_period, expert_offset = 1, 0
        if any(c.ffn_kind(i) != "dense" for i in range(c.n_layers)):
            raise CheckpointError("a Jamba checkpoint has a feed-forward in every layer")
    if set(c.mixers or ()) - {"attention", "mamba"} or set(c.ffns or ()) - {"dense", "moe"}:
        raise CheckpointError("a Jamba checkpoint has a mixer and a feed-forward in every layer")
    return {
        "architectures": ["JambaForCausalLM"], "model_type": "jamba", "vocab_size": c.vocab_size,
        "hidden_size": c.d_model, "intermediate_size": c.d_ff, "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads, "num_key_value_heads": c.kv_heads, "hidden_act": c.activation,
        "rms_norm_eps": c.norm_eps, "max_position_embeddings": c.max_seq_len, "attention_dropout": c.attn_dropout,
        "num_experts": c.n_experts or 1, "num_experts_per_tok": c.n_experts_per_token,
        "router_aux_loss_coef": c.moe_aux_loss_coef,
        "expert_layer_period": expert_period, "expert_layer_offset": expert_offset,
        "attn_layer_period": attn_period, "attn_layer_offset": attn_offset,
        "mamba_d_state": c.ssm_state_size, "mamba_d_conv": c.ssm_conv_kernel, "mamba_expand": c.ssm_expand,
        "mamba_dt_rank": c.ssm_rank, "mamba_conv_bias": c.ssm_conv_bias, "mamba_proj_bias": c.ssm_proj_bias,
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
    }


FAMILIES = (
    Family("jamba", ("jamba",), "JambaForCausalLM", jamba_from_hf, jamba_to_hf, KEY_MAP, base_prefix="model."),
)
