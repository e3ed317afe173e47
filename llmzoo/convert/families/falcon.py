"""Falcon (Almazrouei et al. 2023) and Falcon-RW (Penedo et al. 2023, "The RefinedWeb dataset").

Two decoder layouts share one checkpoint format (`transformer.h.{i}`, fused `query_key_value`):
- old (Falcon-7B, Falcon-RW): multi_query=True is MQA with rows [q; k; v] (else per-head
  (H, 3, hd)); parallel_attn=True is x + attn(ln(x)) + mlp(ln(x)) with ONE shared LayerNorm
  `input_layernorm`, parallel_attn=False the sequential pre-norm block.
- new_decoder_architecture (Falcon-40B/180B, Falcon2-11B): GQA with `num_kv_heads`, rows
  grouped (n_kv, heads per group + 2, hd), always parallel, with two norms `ln_attn`/`ln_mlp`
  (num_ln_in_parallel_attn=2) or one `input_layernorm`.
Both layouts are one grouped-QKV transform (MQA and MHA are its n_kv = 1 and n_kv = H cases).

Positions are RoPE, except Falcon-RW (alibi=true): ALiBi added to q.k *before* the 1/sqrt(hd)
scaling (ModelConfig.alibi_scaled). The reference code rounds the slopes to bfloat16 and forms
slope * key position in bfloat16 even for fp32 models. That is exact only while slopes are powers
of two (<= 8 heads) and positions short; otherwise (Falcon-RW-1B has 32 heads) it differs from
our fp32 bias at the bf16 rounding level, which we do not imitate.
"""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family, Transform, merge_grouped_qkv, split_grouped_qkv
from llmzoo.errors import CheckpointError

LAYER = "transformer.h.{i}."
ATTN = "layers.{i}.self_attn."

COMMON = {
    "transformer.word_embeddings.weight": "embeddings.tokens.weight",
    "transformer.ln_f.weight": "norm.weight",
    "transformer.ln_f.bias": "norm.bias",
    "lm_head.weight": "lm_head.weight",
    **{LAYER + f"{hf}.{w}": f"layers.{{i}}.{zoo}.{w}"
       for hf, zoo in (("self_attention.dense", "self_attn.o_proj"), ("mlp.dense_h_to_4h", "mlp.up_proj"),
                       ("mlp.dense_4h_to_h", "mlp.down_proj"))
       for w in ("weight", "bias")},
}


def _norms(attn: str, mlp: str | None) -> dict[str, str]:
    names = {attn: "attn_norm", **({mlp: "mlp_norm"} if mlp else {})}
    return {LAYER + f"{hf}.{w}": f"layers.{{i}}.{zoo}.{w}" for hf, zoo in names.items() for w in ("weight", "bias")}


def key_map(c: ModelConfig) -> dict[str, str]:
    """The norms' HF names depend on the layout; everything else is shared."""
    if c.parallel_residual and c.parallel_norms == 2:
        return {**COMMON, **_norms("ln_attn", "ln_mlp")}
    if c.parallel_residual:
        return {**COMMON, **_norms("input_layernorm", None)}
    return {**COMMON, **_norms("input_layernorm", "post_attention_layernorm")}


TRANSFORMS = tuple(
    Transform((LAYER + f"self_attention.query_key_value.{w}",),
              (ATTN + f"q_proj.{w}", ATTN + f"k_proj.{w}", ATTN + f"v_proj.{w}"),
              split_grouped_qkv, merge_grouped_qkv)
    for w in ("weight", "bias")
)

IGNORE = (r"rotary_emb\.inv_freq$",)


def _layout(hf: dict[str, Any]) -> dict[str, Any]:
    """kv heads and residual layout, refusing what transformers itself cannot run."""
    heads = hf["num_attention_heads"]
    n_ln = hf.get("num_ln_in_parallel_attn")
    if hf.get("new_decoder_architecture"):
        if hf.get("parallel_attn") is False:
            raise CheckpointError("Falcon new_decoder_architecture with parallel_attn=false is not a runnable "
                                  "layout (the new decoder is always parallel); fix config.json")
        if n_ln not in (None, 1, 2):
            raise CheckpointError(f"Falcon num_ln_in_parallel_attn={n_ln} is not supported (1 or 2)")
        return dict(n_kv_heads=hf.get("num_kv_heads") or heads, parallel_residual=True, parallel_norms=n_ln or 2)
    if n_ln not in (None, 1):
        raise CheckpointError(f"Falcon num_ln_in_parallel_attn={n_ln} needs new_decoder_architecture=true")
    if not hf.get("multi_query", True) and hf.get("num_kv_heads") not in (None, heads):
        raise CheckpointError("Falcon num_kv_heads differs from num_attention_heads but multi_query=false and "
                              "new_decoder_architecture=false: grouped kv heads need new_decoder_architecture=true")
    return dict(n_kv_heads=1 if hf.get("multi_query", True) else heads,
                parallel_residual=bool(hf.get("parallel_attn", True)), parallel_norms=1)


def falcon_from_hf(hf: dict[str, Any]) -> ModelConfig:
    hf = {**hf, "hidden_size": hf.get("hidden_size", hf.get("n_embed"))}
    H.require(hf, "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    d, bias = hf["hidden_size"], bool(hf.get("bias", False))
    base, scaling = H.rope(hf)
    if hf.get("alibi"):
        # Falcon-RW adds ALiBi to the raw q.k and then scales both by 1/sqrt(hd).
        positions = dict(position="alibi", alibi_scaled=True)
    else:
        positions = dict(position="rope", rope_base=base, rope_scaling=scaling)
    return ModelConfig(
        name=hf.get("_name_or_path") or "falcon", family="falcon", arch="decoder",
        vocab_size=hf["vocab_size"], d_model=d, n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"], d_ff=hf.get("ffn_hidden_size") or 4 * d,
        max_seq_len=hf.get("max_position_embeddings", 2048),
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        **positions, qkv_bias=bias, attn_out_bias=bias, mlp_bias=bias,
        activation=H.activation(hf, "activation", "gelu"), mlp_gated=False,
        norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5), **_layout(hf),
        **H.token_ids(hf),
    )


def falcon_to_hf(c: ModelConfig) -> dict[str, Any]:
    rules = {k: v for k, v in H.CLASSIC_DECODER.items() if k != "rope_scaling"}
    H.expect(c, "falcon", **rules, rope_fraction=1.0, rope_interleaved=False, norm_placement="pre",
             final_norm=True, embed_norm=False, lm_head_bias=False, sliding_window=None, layer_pattern=None,
             attn_scale=None)
    if c.hd * c.n_heads != c.d_model:  # transformers' Falcon derives head_dim = hidden_size / num_attention_heads
        raise CheckpointError(f"a falcon checkpoint needs head_dim = d_model / n_heads = {c.d_model // c.n_heads}, "
                              f"not {c.hd}")
    alibi = c.position == "alibi"
    if alibi:
        H.expect(c, "falcon", alibi_scaled=True, alibi_max_bias=8.0)
    elif c.position != "rope":
        raise CheckpointError(f"a falcon checkpoint uses RoPE or (Falcon-RW) ALiBi positions, not {c.position!r}")
    if not c.qkv_bias == c.attn_out_bias == c.mlp_bias:
        raise CheckpointError("a falcon checkpoint has biases on all linear layers or on none "
                              "(qkv_bias, attn_out_bias and mlp_bias must agree)")
    # The old layout expresses MQA/MHA with one shared norm or a sequential block; anything else
    # (GQA, two parallel norms) needs the new decoder architecture, which is always parallel.
    new = c.parallel_residual and (c.parallel_norms == 2 or c.kv_heads not in (1, c.n_heads))
    if not new and c.kv_heads not in (1, c.n_heads):
        raise CheckpointError(f"a sequential (parallel_residual=False) falcon block supports MQA or MHA only, "
                              f"not n_kv_heads={c.kv_heads}")
    layout = (dict(new_decoder_architecture=True, num_kv_heads=c.kv_heads, num_ln_in_parallel_attn=c.parallel_norms,
                   parallel_attn=True, multi_query=c.kv_heads == 1) if new else
              dict(new_decoder_architecture=False, multi_query=c.kv_heads == 1, num_kv_heads=c.n_heads,
                   parallel_attn=c.parallel_residual, num_ln_in_parallel_attn=None))
    return {
        "architectures": ["FalconForCausalLM"], "model_type": "falcon", "vocab_size": c.vocab_size,
        "hidden_size": c.d_model, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
        "ffn_hidden_size": c.d_ff, "max_position_embeddings": c.max_seq_len, "alibi": alibi, "bias": c.qkv_bias,
        "activation": H.activation_to_hf(c.activation, "gelu_pytorch_tanh"), "layer_norm_epsilon": c.norm_eps,
        "tie_word_embeddings": c.tie_embeddings, **layout, **H.rope_to_hf(c),
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
    }


FAMILIES = (
    Family("falcon", ("falcon",), "FalconForCausalLM", falcon_from_hf, falcon_to_hf, key_map, TRANSFORMS,
           ignore=IGNORE, base_prefix="transformer."),
)
