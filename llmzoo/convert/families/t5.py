"""T5 (Raffel et al. 2020), T5 v1.1, mT5 (Xue et al. 2021) and UL2 (Tay et al. 2022).

Pre-norm blocks with T5's RMSNorm (no mean, no bias), a bucketed relative position bias held by
layer 0 of each stack, no attention scaling, no biases anywhere. v1.0 uses a ReLU MLP and ties the
LM head to the embeddings with a d_model**-0.5 rescale; v1.1, mT5 and UL2 use a gated-GELU (UL2:
gated-SiLU) MLP and no rescale. mT5 and UL2 are T5 v1.1 configs: the same layout, other sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError


def feed_forward(hf: dict[str, Any]) -> tuple[str, bool]:
    """T5's `feed_forward_proj` ("relu", "gated-gelu", "gated-silu", ...) -> (activation, gated)."""
    proj = hf.get("feed_forward_proj", "relu")
    parts = proj.split("-")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
        raise CheckpointError(f"feed_forward_proj {proj!r} is not supported (e.g. 'relu', 'gated-gelu')")
    gated = len(parts) == 2
    if proj == "gated-gelu":
        return "gelu_tanh", True  # transformers maps gated-gelu to gelu_new for T5 v1.1
    return H.activation({"act": parts[-1]}, "act"), gated


def t5_from_hf(hf: dict[str, Any], family: str = "t5") -> ModelConfig:
    H.require(hf, "d_model", "num_layers", "num_heads", "d_ff", "d_kv", "vocab_size")
    archs = hf.get("architectures") or ["T5ForConditionalGeneration"]
    if not archs[0].endswith("ForConditionalGeneration"):
        raise CheckpointError(f"{archs[0]} checkpoints are not supported; use a *ForConditionalGeneration checkpoint")
    activation, gated = feed_forward(hf)
    # transformers 5 writes scale_decoder_outputs; before it, a tied T5 head implied the rescale.
    # mT5 (a v1.1 model) never rescales.
    tie = bool(hf.get("tie_word_embeddings", True))
    scale = bool(hf.get("scale_decoder_outputs", tie)) if family == "t5" else False
    ids = H.token_ids(hf)
    start = hf.get("decoder_start_token_id", ids["pad_token_id"])
    return ModelConfig(
        name=hf.get("_name_or_path") or family, family=family, arch="encoder_decoder", head="lm",
        vocab_size=hf["vocab_size"], d_model=hf["d_model"], n_layers=hf["num_layers"],
        n_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"], n_heads=hf["num_heads"],
        head_dim=hf["d_kv"], d_ff=hf["d_ff"], max_seq_len=hf.get("n_positions") or 512,
        tie_embeddings=tie, position="relative_bias",
        relative_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_max_distance=hf.get("relative_attention_max_distance", 128),
        attn_scale=1.0, activation=activation, mlp_gated=gated, norm="rmsnorm",
        norm_eps=hf.get("layer_norm_epsilon", 1e-6), norm_placement="pre", final_norm=True,
        logit_scale_rsqrt_d=scale, decoder_start_token_id=start, **ids,
    )


def t5_to_hf(c: ModelConfig, model_type: str = "t5", architecture: str = "T5ForConditionalGeneration") -> dict[str, Any]:
    if model_type == "mt5" and c.logit_multiplier is not None:
        raise CheckpointError("mT5 checkpoints have no decoder-output rescaling; set logit_scale=None and "
                              "logit_scale_rsqrt_d=False")
    # T5's layout has no field for these: transformers would run its own values silently
    H.expect(c, "T5", attn_scale=1.0, position="relative_bias", norm="rmsnorm", norm_placement="pre",
             qkv_bias=False, mlp_bias=False, n_experts=0)
    if c.logit_scale is not None and abs(c.logit_scale - c.d_model ** -0.5) > 1e-12:
        # scale_decoder_outputs means d_model**-0.5 in transformers; any other factor has no field
        raise CheckpointError(f"a T5 checkpoint scales tied logits by d_model**-0.5 = {c.d_model ** -0.5:.6g}, "
                              f"but this config has logit_scale={c.logit_scale:.6g}")
    if c.mlp_gated and c.activation == "gelu":
        raise CheckpointError("transformers reads T5's 'gated-gelu' as tanh-GELU; exact-GELU gating has no name")
    act = {"gelu_tanh": "gelu" if c.mlp_gated else "gelu_new"}.get(c.activation, c.activation)
    return {
        "architectures": [architecture], "model_type": model_type, "vocab_size": c.vocab_size,
        "d_model": c.d_model, "d_kv": c.hd, "d_ff": c.d_ff, "num_layers": c.n_layers,
        "num_decoder_layers": c.decoder_layers, "num_heads": c.n_heads,
        "relative_attention_num_buckets": c.relative_buckets,
        "relative_attention_max_distance": c.relative_max_distance, "layer_norm_epsilon": c.norm_eps,
        "feed_forward_proj": f"gated-{act}" if c.mlp_gated else act, "is_encoder_decoder": True,
        "tie_word_embeddings": c.tie_embeddings, "scale_decoder_outputs": c.logit_multiplier is not None,
        "pad_token_id": c.pad_token_id, "eos_token_id": c.eos_token_id, "bos_token_id": c.bos_token_id,
        # T5 decodes from pad when no start id is set (as llmzoo does); transformers needs it written
        "decoder_start_token_id": c.decoder_start_token_id if c.decoder_start_token_id is not None else c.pad_token_id,
    }


def t5_layer_keys(feed_forward: Callable[[str, str], dict[str, str]]) -> dict[str, str]:
    """HF -> llmzoo keys of a T5-layout encoder-decoder. feed_forward(hf_prefix, zoo_prefix) gives the
    feed-forward sublayer's own keys: T5's DenseReluDense here, Switch's router and experts in
    switch_transformers.py; everything else (shared table, attention, norms, bias tables) is common."""
    keys = {"shared.weight": "embeddings.tokens.weight", "lm_head.weight": "lm_head.weight"}
    for side in ("encoder", "decoder"):
        hf, zoo = f"{side}.block.{{i}}.layer.", f"{side}.layers.{{i}}."
        ff = 2 if side == "decoder" else 1
        keys.update({
            f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight": f"{side}.relative_bias.embedding.weight",
            f"{side}.final_layer_norm.weight": f"{side}.norm.weight",
            f"{hf}0.layer_norm.weight": f"{zoo}attn_norm.weight",
            f"{hf}{ff}.layer_norm.weight": f"{zoo}mlp_norm.weight",
            **{f"{hf}0.SelfAttention.{p}.weight": f"{zoo}self_attn.{p}_proj.weight" for p in "qkvo"},
            **feed_forward(f"{hf}{ff}.", zoo),
        })
        if side == "decoder":
            keys[f"{hf}1.layer_norm.weight"] = f"{zoo}cross_attn_norm.weight"
            keys.update({f"{hf}1.EncDecAttention.{p}.weight": f"{zoo}cross_attn.{p}_proj.weight" for p in "qkvo"})
    return keys


def t5_keys(c: ModelConfig) -> dict[str, str]:
    mlp = ({"wi_0": "gate_proj", "wi_1": "up_proj", "wo": "down_proj"} if c.mlp_gated
           else {"wi": "up_proj", "wo": "down_proj"})
    return t5_layer_keys(lambda hf, zoo: {f"{hf}DenseReluDense.{h}.weight": f"{zoo}mlp.{z}.weight"
                                          for h, z in mlp.items()})


# Copies of the shared table, and a cross-attention bias table old checkpoints carry unused.
T5_IGNORE = (r"^(encoder|decoder)\.embed_tokens\.weight$", r"EncDecAttention\.relative_attention_bias")

FAMILIES = (
    Family("t5", ("t5",), "T5ForConditionalGeneration", t5_from_hf, t5_to_hf, t5_keys, ignore=T5_IGNORE,
           zoo_families=("ul2",)),
    Family("mt5", ("mt5",), "MT5ForConditionalGeneration", lambda hf: t5_from_hf(hf, "mt5"),
           lambda c: t5_to_hf(c, "mt5", "MT5ForConditionalGeneration"), t5_keys, ignore=T5_IGNORE),
)
