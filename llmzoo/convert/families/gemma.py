"""Gemma (Gemma Team 2024): LLaMA's layout and names with three differences that matter -
token embeddings multiplied by sqrt(d_model), RMSNorm weights stored as w - 1 (so the norm
multiplies by 1 + w), and a GeGLU feed-forward with tanh-approximated GELU. head_dim is set
explicitly (256 in Gemma-7B, where 16 heads x 256 != d_model 3072). Multi-query in Gemma-2B.
"""

from __future__ import annotations

import math
from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.families.llama import COMMON, DENSE_MLP, IGNORE
from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError


def check(hf: dict[str, Any]) -> None:
    if hf.get("use_bidirectional_attention"):
        raise CheckpointError("Gemma with use_bidirectional_attention=true (an encoder use) is not supported")


def _activation(hf: dict[str, Any]) -> str:
    # The released configs say hidden_act="gelu" but were trained with the tanh approximation;
    # transformers rewrites "gelu" to "gelu_pytorch_tanh" for Gemma, and so do we.
    name = hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh"
    return "gelu_tanh" if name == "gelu" else H.activation({"hidden_act": name})


def gemma_from_hf(hf: dict[str, Any]) -> ModelConfig:
    check(hf)
    H.require(hf, "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    base, scaling = H.rope(hf)
    d, heads = hf["hidden_size"], hf["num_attention_heads"]
    bias = bool(hf.get("attention_bias", False))
    return ModelConfig(
        name=hf.get("_name_or_path") or "gemma", family="gemma", arch="decoder",
        vocab_size=hf["vocab_size"], d_model=d, n_layers=hf["num_hidden_layers"], n_heads=heads,
        n_kv_heads=hf.get("num_key_value_heads") or heads, head_dim=hf.get("head_dim") or d // heads,
        d_ff=hf["intermediate_size"], max_seq_len=hf.get("max_position_embeddings", 8192),
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)), embed_scale=math.sqrt(d),
        position="rope", rope_base=base, rope_scaling=scaling, qkv_bias=bias, attn_out_bias=bias,
        activation=_activation(hf), mlp_gated=True,
        norm="rmsnorm", norm_unit_offset=True, norm_eps=hf.get("rms_norm_eps", 1e-6), **H.token_ids(hf),
    )


def gemma_to_hf(c: ModelConfig) -> dict[str, Any]:
    H.expect(c, "gemma", arch="decoder", head="lm", position="rope", rope_fraction=1.0, rope_interleaved=False,
             norm="rmsnorm", norm_unit_offset=True, norm_placement="pre", final_norm=True, parallel_residual=False,
             mlp_gated=True, mlp_bias=False, n_experts=0, embed_norm=False, embed_dim=None, type_vocab_size=0,
             lm_head_bias=False, logit_scale=None, logit_scale_rsqrt_d=False, attn_logit_softcap=None,
             attn_scale=None, sliding_window=None, layer_pattern=None, share_layers=False, position_offset=0)
    if c.embed_scale is None or not math.isclose(c.embed_scale, math.sqrt(c.d_model)):
        raise CheckpointError(f"a gemma checkpoint scales embeddings by sqrt(d_model)={math.sqrt(c.d_model):g}, "
                              f"not embed_scale={c.embed_scale}")
    if c.activation == "gelu":
        raise CheckpointError("a gemma config.json cannot express exact GELU (transformers reads hidden_act='gelu' "
                              "as the tanh approximation); use activation='gelu_tanh'")
    if c.qkv_bias != c.attn_out_bias:
        raise CheckpointError("a gemma checkpoint has either all or no attention biases (qkv_bias == attn_out_bias)")
    return {
        "architectures": ["GemmaForCausalLM"], "model_type": "gemma", "vocab_size": c.vocab_size,
        "hidden_size": c.d_model, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.kv_heads, "head_dim": c.hd, "intermediate_size": c.d_ff,
        "max_position_embeddings": c.max_seq_len, "tie_word_embeddings": c.tie_embeddings,
        "hidden_act": H.activation_to_hf(c.activation, "gelu_pytorch_tanh"), "rms_norm_eps": c.norm_eps,
        "attention_bias": c.qkv_bias, **H.rope_to_hf(c),
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
    }


FAMILIES = (
    Family("gemma", ("gemma",), "GemmaForCausalLM", gemma_from_hf, gemma_to_hf, {**COMMON, **DENSE_MLP},
           ignore=IGNORE, base_prefix="model.", check=check),
)
