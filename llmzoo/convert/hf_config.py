"""Helpers for reading and writing transformers config.json dicts (shared by all families)."""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig, RopeScaling
from llmzoo.errors import CheckpointError

# transformers `hidden_act` names -> ours (several names denote the same function).
HF_ACTIVATIONS = {
    "silu": "silu", "swish": "silu", "gelu": "gelu", "relu": "relu",
    "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
    "quick_gelu": "quick_gelu",
}


def activation(hf: dict[str, Any], key: str = "hidden_act", default: str = "silu") -> str:
    name = hf.get(key) or default
    if name not in HF_ACTIVATIONS:
        raise CheckpointError(f"activation {name!r} in config.json is not supported "
                              f"(supported: {', '.join(sorted(HF_ACTIVATIONS))})")
    return HF_ACTIVATIONS[name]


def rope(hf: dict[str, Any], default_base: float = 10000.0) -> tuple[float, RopeScaling | None]:
    """RoPE base and scaling from either transformers v5 `rope_parameters` or v4 `rope_theta`
    + `rope_scaling`."""
    params = dict(hf.get("rope_parameters") or {})
    scaling = dict(hf.get("rope_scaling") or {})
    base = params.get("rope_theta", hf.get("rope_theta", default_base))
    merged = {**scaling, **params}
    kind = merged.get("rope_type", merged.get("type", "default"))
    if kind in (None, "default"):
        return float(base), None
    known = {"linear", "dynamic", "llama3", "yarn"}
    if kind not in known:
        raise CheckpointError(f"RoPE scaling {kind!r} is not supported (supported: {', '.join(sorted(known))})")
    original = merged.get("original_max_position_embeddings")
    return float(base), RopeScaling(
        kind=kind, factor=float(merged.get("factor", 1.0)), original_max_seq_len=original,
        low_freq_factor=float(merged.get("low_freq_factor", 1.0)),
        high_freq_factor=float(merged.get("high_freq_factor", 4.0)),
        beta_fast=float(merged.get("beta_fast", 32.0)), beta_slow=float(merged.get("beta_slow", 1.0)),
    )


def rope_to_hf(c: ModelConfig) -> dict[str, Any]:
    params: dict[str, Any] = {"rope_theta": c.rope_base, "rope_type": "default"}
    s = c.rope_scaling
    if s is not None:
        if s.kind == "ntk":
            raise CheckpointError("static NTK RoPE scaling has no transformers equivalent; save with format='llmzoo'")
        params.update(rope_type=s.kind, factor=s.factor)
        if s.original_max_seq_len:
            params["original_max_position_embeddings"] = s.original_max_seq_len
        if s.kind == "llama3":
            params.update(low_freq_factor=s.low_freq_factor, high_freq_factor=s.high_freq_factor)
        if s.kind == "yarn":
            params.update(beta_fast=s.beta_fast, beta_slow=s.beta_slow)
    return {"rope_theta": c.rope_base, "rope_parameters": params}


def token_ids(hf: dict[str, Any]) -> dict[str, int | None]:
    def first(v):
        return v[0] if isinstance(v, list) and v else v

    return {
        "bos_token_id": first(hf.get("bos_token_id")),
        "eos_token_id": first(hf.get("eos_token_id")),
        "pad_token_id": first(hf.get("pad_token_id")),
    }


def require(hf: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in hf]
    if missing:
        raise CheckpointError(f"config.json lacks {', '.join(missing)} (model_type {hf.get('model_type')!r})")


_MISSING = object()


def lookup(hf: dict[str, Any], *names: str, default: Any = _MISSING) -> Any:
    """The first of several spellings of one config.json field (transformers' attribute_map
    aliases: BLOOM's hub files say n_embed / num_attention_heads, its config class hidden_size /
    n_head). Without a default, a missing field raises CheckpointError."""
    for name in names:
        if hf.get(name) is not None:
            return hf[name]
    if default is _MISSING:
        raise CheckpointError(f"config.json lacks {' / '.join(names)} (model_type {hf.get('model_type')!r})")
    return default


def activation_to_hf(name: str, tanh_name: str = "gelu_new") -> str:
    """Our activation name -> a transformers `hidden_act`/`activation_function` value; the
    tanh-approximated GELU has several HF spellings, so the family picks its own."""
    return tanh_name if name == "gelu_tanh" else name


def expect(c: ModelConfig, family: str, **fields: Any) -> None:
    """Raise if `c` sets a field to a value the family's HF format cannot express (on save)."""
    for name, want in fields.items():
        got = getattr(c, name)
        if got != want:
            raise CheckpointError(f"a {family} checkpoint needs {name}={want!r} but this config has {got!r}; "
                                  f"it cannot be written in the {family} layout")


# Fields that none of the GPT-2-era checkpoint layouts (GPT-2, GPT-Neo, GPT-J, OPT, BLOOM,
# CodeGen) can express; each family adds its own distinguishing fields on top.
CLASSIC_DECODER: dict[str, Any] = dict(
    arch="decoder", head="lm", norm="layernorm", norm_bias=True, mlp_gated=False, n_experts=0,
    embed_scale=None, embed_dim=None, type_vocab_size=0, attn_logit_softcap=None, logit_scale=None,
    logit_scale_rsqrt_d=False,
    share_layers=False, rope_scaling=None,
)


def expect_classic_decoder(c: ModelConfig, family: str, **fields: Any) -> None:
    """`expect` for a GPT-2-era layout: plain MHA with head_dim = d_model / n_heads and no
    modern extras, plus the family's own `fields`."""
    if c.kv_heads != c.n_heads or c.hd * c.n_heads != c.d_model:
        raise CheckpointError(f"a {family} checkpoint needs plain multi-head attention with "
                              f"head_dim = d_model / n_heads "
                              f"(this config: n_kv_heads={c.kv_heads}, head_dim={c.hd})")
    expect(c, family, **{**CLASSIC_DECODER, **fields})


def rope_fraction(rotary_dim: int, head_dim: int, family: str) -> float:
    """rotary_dim (GPT-J/CodeGen/NeoX style, in channels) -> ModelConfig.rope_fraction, exactly."""
    if not 0 < rotary_dim <= head_dim or rotary_dim % 2:
        raise CheckpointError(f"{family} rotary_dim={rotary_dim} must be even and in (0, head_dim={head_dim}]")
    fraction = rotary_dim / head_dim
    if int(head_dim * fraction) != rotary_dim:  # float round-trip guard for ModelConfig.rotary_dim
        raise CheckpointError(f"{family} rotary_dim={rotary_dim} is not representable as a fraction "
                              f"of head_dim={head_dim}")
    return fraction
