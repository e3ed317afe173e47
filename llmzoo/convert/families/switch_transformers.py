"""Switch Transformer (Fedus et al. 2021): transformers' SwitchTransformersForConditionalGeneration <->
a T5 v1.0-style encoder-decoder whose feed-forward is a top-1 routed MoE in every `sparse_step`-th layer.

The layout is T5's (pre-norm RMSNorm, relative position bias held by layer 0, no attention scaling,
a ReLU MLP, a tied head rescaled by d_model**-0.5), with `layer.{1|2}.mlp` either a dense wi/wo MLP or
a router (`router.classifier`) and experts `experts.expert_{j}`. transformers makes layer i sparse when
i % sparse_step == 1 (every layer when the step is 1): one cycled ffns tuple of the step's length.
Capacity is a fixed number of tokens per expert per sequence (`expert_capacity`), filled in sequence order.
"""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.families.t5 import t5_layer_keys
from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError


def sparse_pattern(step: int) -> tuple[str, ...]:
    """transformers' `i % step == 1 or step == 1` as a cycled per-layer ffns tuple."""
    if step <= 1:
        return ("moe",)
    return tuple("moe" if i == 1 else "dense" for i in range(step))


def sparse_step(hf: dict[str, Any], layers: int, sparse: str) -> int:
    """SwitchTransformersConfig's encoder/decoder_sparse_step from its num_sparse_*_layers."""
    n = hf.get(sparse, 3)
    return layers // n if n > 0 else layers


def switch_from_hf(hf: dict[str, Any]) -> ModelConfig:
    H.require(hf, "d_model", "num_layers", "num_heads", "d_ff", "d_kv", "vocab_size", "num_experts")
    if hf.get("dense_act_fn", "relu") != "relu" or hf.get("feed_forward_proj", "relu") != "relu":
        raise CheckpointError("SwitchTransformers checkpoints with an MLP other than ReLU are not supported")
    if hf.get("router_dtype", "float32") != "float32":
        raise CheckpointError(f"router_dtype {hf['router_dtype']!r} is not supported; Switch routes in float32")
    if not hf.get("tie_word_embeddings", True):
        # transformers 5 then keeps shared, encoder.embed_tokens and decoder.embed_tokens as three tables;
        # llmzoo's encoder-decoder has one (and every released Switch checkpoint ties them)
        raise CheckpointError("untied SwitchTransformers checkpoints (tie_word_embeddings=false) are not supported: "
                              "their encoder and decoder have separate token tables")
    layers = hf["num_layers"]
    decoder_layers = hf.get("num_decoder_layers") or layers
    enc = sparse_step(hf, layers, "num_sparse_encoder_layers")
    dec = sparse_step(hf, decoder_layers, "num_sparse_decoder_layers")
    if sparse_pattern(enc) != sparse_pattern(dec):
        raise CheckpointError(f"this Switch checkpoint's encoder has a MoE every {enc} layers and its decoder every "
                              f"{dec}; llmzoo's per-layer spec is one pattern for both sides")
    ids = H.token_ids(hf)
    return ModelConfig(
        name=hf.get("_name_or_path") or "switch", family="switch", arch="encoder_decoder", head="lm",
        vocab_size=hf["vocab_size"], d_model=hf["d_model"], n_layers=layers, n_decoder_layers=decoder_layers,
        n_heads=hf["num_heads"], head_dim=hf["d_kv"], d_ff=hf["d_ff"], max_seq_len=hf.get("n_positions") or 512,
        tie_embeddings=True, position="relative_bias",
        relative_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_max_distance=hf.get("relative_attention_max_distance", 128),
        attn_scale=1.0, activation="relu", mlp_gated=False, norm="rmsnorm",
        norm_eps=hf.get("layer_norm_epsilon", 1e-6), norm_placement="pre", final_norm=True,
        logit_scale_rsqrt_d=True,  # the tied head's d_model**-0.5 rescale (Mesh TensorFlow), as T5 v1.0
        ffns=sparse_pattern(enc), n_experts=hf["num_experts"], n_experts_per_token=1, moe_kind="switch",
        moe_renormalize=False, moe_expert_capacity=hf.get("expert_capacity", 64),
        moe_router_bias=bool(hf.get("router_bias", False)), moe_jitter=float(hf.get("router_jitter_noise", 0.01)),
        moe_aux_loss_coef=hf.get("router_aux_loss_coef", 0.001), moe_z_loss_coef=hf.get("router_z_loss_coef", 0.001),
        decoder_start_token_id=hf.get("decoder_start_token_id", ids["pad_token_id"]), **ids,
    )


def _step(c: ModelConfig, layers: int) -> int:
    """The sparse step whose transformers pattern equals the config's over `layers` layers."""
    want = [c.ffn_kind(i) for i in range(layers)]
    for step in range(1, layers + 1):
        pattern = sparse_pattern(step)
        if [pattern[i % len(pattern)] for i in range(layers)] == want:
            return step
    raise CheckpointError(f"a Switch checkpoint has a MoE in every layer i with i % step == 1; this config's "
                          f"ffns {c.ffns} is no such pattern over {layers} layers")


def switch_to_hf(c: ModelConfig) -> dict[str, Any]:
    H.expect(c, "SwitchTransformers", arch="encoder_decoder", head="lm", position="relative_bias", attn_scale=1.0,
             norm="rmsnorm", norm_placement="pre", final_norm=True, activation="relu", mlp_gated=False,
             mlp_bias=False, qkv_bias=False, attn_out_bias=False, moe_kind="switch", n_experts_per_token=1,
             moe_capacity_factor=None, logit_scale=None, logit_scale_rsqrt_d=True,
             tie_embeddings=True, lm_head_bias=False)
    if c.moe_expert_capacity is None:
        raise CheckpointError("a Switch checkpoint has a fixed expert capacity; set moe_expert_capacity")
    enc, dec = _step(c, c.n_layers), _step(c, c.decoder_layers)
    return {
        "architectures": ["SwitchTransformersForConditionalGeneration"], "model_type": "switch_transformers",
        "vocab_size": c.vocab_size, "d_model": c.d_model, "d_kv": c.hd, "d_ff": c.d_ff, "num_layers": c.n_layers,
        "num_decoder_layers": c.decoder_layers, "num_heads": c.n_heads, "num_experts": c.n_experts,
        # transformers derives the step as layers // num_sparse; a ceiling keeps that division exact
        "num_sparse_encoder_layers": -(-c.n_layers // enc), "num_sparse_decoder_layers": -(-c.decoder_layers // dec),
        "expert_capacity": c.moe_expert_capacity, "router_bias": c.moe_router_bias,
        "router_jitter_noise": c.moe_jitter, "router_dtype": "float32", "router_ignore_padding_tokens": False,
        "router_z_loss_coef": c.moe_z_loss_coef, "router_aux_loss_coef": c.moe_aux_loss_coef,
        "relative_attention_num_buckets": c.relative_buckets, "relative_attention_max_distance": c.relative_max_distance,
        "layer_norm_epsilon": c.norm_eps, "dense_act_fn": "relu", "feed_forward_proj": "relu",
        "is_encoder_decoder": True, "tie_word_embeddings": True,
        "pad_token_id": c.pad_token_id, "eos_token_id": c.eos_token_id, "bos_token_id": c.bos_token_id,
        "decoder_start_token_id": c.decoder_start_token_id if c.decoder_start_token_id is not None else c.pad_token_id,
    }


def switch_keys(c: ModelConfig) -> dict[str, str]:
    # T5's layout; the feed-forward is dense in some layers and a router + experts in the sparse ones
    return t5_layer_keys(lambda hf, zoo: {
        f"{hf}mlp.wi.weight": f"{zoo}mlp.up_proj.weight",
        f"{hf}mlp.wo.weight": f"{zoo}mlp.down_proj.weight",
        f"{hf}mlp.router.classifier.weight": f"{zoo}mlp.router.weight",
        f"{hf}mlp.router.classifier.bias": f"{zoo}mlp.router.bias",
        f"{hf}mlp.experts.expert_{{j}}.wi.weight": f"{zoo}mlp.experts.{{j}}.up_proj.weight",
        f"{hf}mlp.experts.expert_{{j}}.wo.weight": f"{zoo}mlp.experts.{{j}}.down_proj.weight",
    })


# Copies of the shared table, and a cross-attention bias table checkpoints may carry unused.
IGNORE = (r"^(encoder|decoder)\.embed_tokens\.weight$", r"EncDecAttention\.relative_attention_bias")

FAMILIES = (
    Family("switch", ("switch_transformers",), "SwitchTransformersForConditionalGeneration", switch_from_hf,
           switch_to_hf, switch_keys, ignore=IGNORE),
)
