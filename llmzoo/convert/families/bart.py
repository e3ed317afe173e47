"""BART (Lewis et al. 2020) and mBART (Liu et al. 2020).

BART: post-norm blocks, learned positions with an offset of 2 (fairseq reserved the first rows),
a LayerNorm right after the embeddings, GELU MLP, biases everywhere, optional sqrt(d_model)
embedding scale, and an LM head tied to the shared table plus a separate output bias
(`final_logits_bias`). mBART is the same made pre-norm, with a final LayerNorm on each stack.
"""

from __future__ import annotations

import math
from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family, Transform
from llmzoo.errors import CheckpointError

POSITION_OFFSET = 2


def bart_from_hf(hf: dict[str, Any], family: str = "bart") -> ModelConfig:
    H.require(hf, "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "vocab_size")
    archs = hf.get("architectures") or ["BartForConditionalGeneration"]
    if not archs[0].endswith("ForConditionalGeneration"):
        raise CheckpointError(f"{archs[0]} checkpoints are not supported; use a *ForConditionalGeneration checkpoint")
    for enc, dec in (("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")):
        if hf.get(enc) != hf.get(dec, hf.get(enc)):
            raise CheckpointError(f"{enc}={hf.get(enc)} differs from {dec}={hf.get(dec)}; llmzoo needs them equal")
    pre = family == "mbart"
    d = hf["d_model"]
    return ModelConfig(
        name=hf.get("_name_or_path") or family, family=family, arch="encoder_decoder", head="lm",
        vocab_size=hf["vocab_size"], d_model=d, n_layers=hf["encoder_layers"], n_decoder_layers=hf["decoder_layers"],
        n_heads=hf["encoder_attention_heads"], d_ff=hf.get("encoder_ffn_dim", 4 * d),
        max_seq_len=hf.get("max_position_embeddings", 1024), tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        embed_scale=math.sqrt(d) if hf.get("scale_embedding") else None, embed_norm=True,
        position="learned", position_offset=POSITION_OFFSET, activation=H.activation(hf, "activation_function", "gelu"),
        mlp_gated=False, mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5,
        norm_placement="pre" if pre else "post", final_norm=pre, lm_head_bias=True,
        decoder_start_token_id=hf.get("decoder_start_token_id"), **H.token_ids(hf),
    )


def bart_to_hf(c: ModelConfig, model_type: str = "bart", architecture: str = "BartForConditionalGeneration") -> dict[str, Any]:
    if c.position_offset != POSITION_OFFSET or c.norm_eps != 1e-5:
        raise CheckpointError("BART checkpoints need position_offset=2 and norm_eps=1e-5")
    if c.embed_scale is not None and not math.isclose(c.embed_scale, math.sqrt(c.d_model)):
        raise CheckpointError(f"a BART checkpoint scales embeddings by sqrt(d_model)={math.sqrt(c.d_model):g} or not "
                              f"at all, not embed_scale={c.embed_scale}")
    return {
        "architectures": [architecture], "model_type": model_type, "vocab_size": c.vocab_size, "d_model": c.d_model,
        "encoder_layers": c.n_layers, "decoder_layers": c.decoder_layers, "encoder_attention_heads": c.n_heads,
        "decoder_attention_heads": c.n_heads, "encoder_ffn_dim": c.d_ff, "decoder_ffn_dim": c.d_ff,
        "max_position_embeddings": c.max_seq_len, "scale_embedding": c.embed_scale is not None,
        "activation_function": {"gelu_tanh": "gelu_new"}.get(c.activation, c.activation),
        "tie_word_embeddings": c.tie_embeddings, "is_encoder_decoder": True,
        "pad_token_id": c.pad_token_id, "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
        # BART decodes from </s> when no start id is set (fairseq); transformers needs it written
        "decoder_start_token_id": c.decoder_start_token_id if c.decoder_start_token_id is not None else c.eos_token_id,
        "forced_eos_token_id": None,
    }


def _wb(hf: str, zoo: str) -> dict[str, str]:
    return {f"{hf}.{w}": f"{zoo}.{w}" for w in ("weight", "bias")}


def bart_keys(c: ModelConfig) -> dict[str, str]:
    keys = {"model.shared.weight": "embeddings.tokens.weight", "lm_head.weight": "lm_head.weight"}
    for side in ("encoder", "decoder"):
        hf, zoo = f"model.{side}.layers.{{i}}.", f"{side}.layers.{{i}}."
        keys[f"model.{side}.embed_positions.weight"] = f"{side}.positions.weight"
        keys.update(_wb(f"model.{side}.layernorm_embedding", f"{side}.embed_norm"))
        if c.final_norm:
            keys.update(_wb(f"model.{side}.layer_norm", f"{side}.norm"))
        attns = {"self_attn": "self_attn", **({"encoder_attn": "cross_attn"} if side == "decoder" else {})}
        for h_attn, z_attn in attns.items():
            for p in ("q", "k", "v"):
                keys.update(_wb(f"{hf}{h_attn}.{p}_proj", f"{zoo}{z_attn}.{p}_proj"))
            keys.update(_wb(f"{hf}{h_attn}.out_proj", f"{zoo}{z_attn}.o_proj"))
            keys.update(_wb(f"{hf}{h_attn}_layer_norm", f"{zoo}{z_attn.replace('self_attn', 'attn')}_norm"))
        keys.update(_wb(f"{hf}fc1", f"{zoo}mlp.up_proj"))
        keys.update(_wb(f"{hf}fc2", f"{zoo}mlp.down_proj"))
        keys.update(_wb(f"{hf}final_layer_norm", f"{zoo}mlp_norm"))
    return keys


# BART keeps its output bias as a (1, V) buffer next to the tied head.
FINAL_LOGITS_BIAS = Transform(("final_logits_bias",), ("lm_head.bias",), to_zoo=lambda ts, c: [ts[0].reshape(-1)],
                              to_hf=lambda ts, c: [ts[0].reshape(1, -1)])
BART_IGNORE = (r"^model\.(encoder|decoder)\.embed_tokens\.weight$",)

FAMILIES = (
    Family("bart", ("bart",), "BartForConditionalGeneration", bart_from_hf, bart_to_hf, bart_keys,
           transforms=(FINAL_LOGITS_BIAS,), ignore=BART_IGNORE),
    Family("mbart", ("mbart",), "MBartForConditionalGeneration", lambda hf: bart_from_hf(hf, "mbart"),
           lambda c: bart_to_hf(c, "mbart", "MBartForConditionalGeneration"), bart_keys,
           transforms=(FINAL_LOGITS_BIAS,), ignore=BART_IGNORE),
)
