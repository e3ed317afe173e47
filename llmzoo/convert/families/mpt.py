"""MPT (MosaicML 2023, MPT-7B/30B): pre-LayerNorm WITHOUT biases anywhere (no_bias=True),
ALiBi instead of positions (Press et al. 2022), exact-GELU MLP of width expansion_ratio * d,
fused `Wqkv` rows [q; k; v], tied head.

ALiBi slopes: MPT builds them from the next power of two (2^ceil(log2 n)) and interleaves;
for every head count this is the same set, in the same order, as the paper/BLOOM recipe in
`alibi_slopes` (the even-indexed slopes of the doubled set are the closest-power set and the
odd-indexed ones BLOOM's extra slopes) - tests/parity/test_mpt.py checks it against
transformers' `build_mpt_alibi_tensor`, so no separate slope style is needed.

transformers' MPT port ignores some config fields that MosaicML's own code honours:
`alibi_bias_max` (it always uses 8), `expansion_ratio` (it always builds 4 * d) and
`logit_scale`. We follow the config, i.e. the original model; for released checkpoints
(all 8 / 4 / null) both agree. Where `expansion_ratio` and the weights disagree (a checkpoint
transformers saved from a config with expansion_ratio != 4 holds 4 * d wide weights), the
weights are the truth: the width is read from `ffn.up_proj` and a warning says so. Saving back
refuses a width other than 4 * d, which transformers' MPT cannot build.
"""

from __future__ import annotations

import warnings
from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family, Transform, cat_rows, qkv_sizes, split_rows
from llmzoo.errors import CheckpointError

LAYER = "transformer.blocks.{i}."

KEY_MAP = {
    "transformer.wte.weight": "embeddings.tokens.weight",
    "transformer.norm_f.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
    LAYER + "norm_1.weight": "layers.{i}.attn_norm.weight",
    LAYER + "norm_2.weight": "layers.{i}.mlp_norm.weight",
    LAYER + "attn.out_proj.weight": "layers.{i}.self_attn.o_proj.weight",
    LAYER + "ffn.up_proj.weight": "layers.{i}.mlp.up_proj.weight",
    LAYER + "ffn.down_proj.weight": "layers.{i}.mlp.down_proj.weight",
}

TRANSFORMS = (
    Transform((LAYER + "attn.Wqkv.weight",),
              tuple(f"layers.{{i}}.self_attn.{p}_proj.weight" for p in "qkv"), split_rows(qkv_sizes), cat_rows),
)

SUPPORTED_NORMS = ("low_precision_layernorm", "layernorm")


def _attn_config(hf: dict[str, Any]) -> dict[str, Any]:
    """Validate attn_config: refuse every option that changes the math we do not implement."""
    attn = dict(hf.get("attn_config") or {})
    unsupported = [
        ("attn_type", attn.get("attn_type", "multihead_attention") != "multihead_attention"),
        ("clip_qkv", bool(attn.get("clip_qkv"))),  # clamps q, k, v to +-clip_qkv (MPT-30B-style training trick)
        ("qk_ln", bool(attn.get("qk_ln"))),  # LayerNorm on q and k
        ("prefix_lm", bool(attn.get("prefix_lm"))),  # bidirectional prefix needs a prefix mask at inference
        ("rope", bool(attn.get("rope"))),  # llm-foundry's later RoPE option
        ("alibi", not attn.get("alibi", True)),  # without ALiBi MPT would need learned positions
    ]
    for name, bad in unsupported:
        if bad:
            raise CheckpointError(f"MPT attn_config.{name}={attn.get(name)!r} is not supported")
    return attn


def check(hf: dict[str, Any]) -> None:
    _attn_config(hf)
    if not hf.get("no_bias", True):
        raise CheckpointError("MPT with no_bias=false (biased linears and norms) is not supported")
    if hf.get("norm_type", "low_precision_layernorm") not in SUPPORTED_NORMS:
        raise CheckpointError(f"MPT norm_type={hf['norm_type']!r} is not supported ({', '.join(SUPPORTED_NORMS)})")
    ffn_type = (hf.get("ffn_config") or {}).get("ffn_type", "mptmlp")
    if ffn_type != "mptmlp":
        raise CheckpointError(f"MPT ffn_config.ffn_type={ffn_type!r} is not supported (only 'mptmlp')")


def ffn_width_from_weights(hf: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Set expansion_ratio to the width the first block's up_proj actually has."""
    d = hf.get("d_model")
    up = next((shape for key, shape in shapes.items() if key.endswith("blocks.0.ffn.up_proj.weight")), None)
    if up is None or not d:
        return hf
    ratio = up[0] / d
    if ratio == hf.get("expansion_ratio", 4):
        return hf
    warnings.warn(f"MPT config says expansion_ratio={hf.get('expansion_ratio', 4)} but the weights are "
                  f"{up[0]} = {ratio:g} x d_model wide; using the weights' width", stacklevel=3)
    return {**hf, "expansion_ratio": int(ratio) if ratio.is_integer() else ratio}


def _logit_scale(value: Any) -> dict[str, Any]:
    """MPT's logit_scale (a number or 'inv_sqrt_d_model') as ModelConfig fields."""
    if value is None:
        return {}
    if value == "inv_sqrt_d_model":
        return {"logit_scale_rsqrt_d": True}
    if isinstance(value, (int, float)):
        return {"logit_scale": float(value)}
    raise CheckpointError(f"MPT logit_scale={value!r} is not a number or 'inv_sqrt_d_model'")


def mpt_from_hf(hf: dict[str, Any]) -> ModelConfig:
    check(hf)
    H.require(hf, "d_model", "n_heads", "n_layers", "vocab_size")
    attn, d = _attn_config(hf), hf["d_model"]
    return ModelConfig(
        name=hf.get("_name_or_path") or "mpt", family="mpt", arch="decoder",
        vocab_size=hf["vocab_size"], d_model=d, n_layers=hf["n_layers"], n_heads=hf["n_heads"],
        d_ff=int(hf.get("expansion_ratio", 4) * d), max_seq_len=hf.get("max_seq_len", 2048),
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        position="alibi", alibi_max_bias=float(attn.get("alibi_bias_max", 8)), attn_scale=attn.get("softmax_scale"),
        qkv_bias=False, attn_out_bias=False, activation="gelu", mlp_gated=False, mlp_bias=False,
        norm="layernorm", norm_bias=False, norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        **_logit_scale(hf.get("logit_scale")), **H.token_ids(hf),
    )


def mpt_to_hf(c: ModelConfig) -> dict[str, Any]:
    rules = {k: v for k, v in H.CLASSIC_DECODER.items() if k not in ("norm_bias", "logit_scale", "logit_scale_rsqrt_d")}
    H.expect(c, "mpt", **rules, position="alibi", norm_bias=False, norm_placement="pre", final_norm=True,
             parallel_residual=False, activation="gelu", qkv_bias=False, attn_out_bias=False, mlp_bias=False,
             embed_norm=False, lm_head_bias=False, sliding_window=None, layer_pattern=None, head_dim=None)
    if c.kv_heads != c.n_heads:
        raise CheckpointError(f"an mpt checkpoint is multi-head attention, not n_kv_heads={c.kv_heads}")
    if c.d_ff != 4 * c.d_model:
        raise CheckpointError(f"transformers' MPT always builds a feed-forward of 4 * d_model = {4 * c.d_model}, "
                              f"not d_ff={c.d_ff}; save with format='llmzoo' instead")
    max_bias = int(c.alibi_max_bias) if float(c.alibi_max_bias).is_integer() else c.alibi_max_bias
    return {
        "architectures": ["MptForCausalLM"], "model_type": "mpt", "vocab_size": c.vocab_size,
        "d_model": c.d_model, "n_heads": c.n_heads, "n_layers": c.n_layers, "expansion_ratio": c.d_ff // c.d_model,
        "max_seq_len": c.max_seq_len, "layer_norm_epsilon": c.norm_eps, "no_bias": True,
        "norm_type": "low_precision_layernorm", "learned_pos_emb": False,
        "logit_scale": "inv_sqrt_d_model" if c.logit_scale_rsqrt_d else c.logit_scale,
        "attn_config": {"attn_type": "multihead_attention", "alibi": True, "alibi_bias_max": max_bias,
                        "softmax_scale": c.attn_scale, "clip_qkv": None, "qk_ln": False, "prefix_lm": False},
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
    }


FAMILIES = (
    Family("mpt", ("mpt",), "MptForCausalLM", mpt_from_hf, mpt_to_hf, KEY_MAP, TRANSFORMS,
           base_prefix="transformer.", check=check, amend_from_weights=ffn_width_from_weights),
)
