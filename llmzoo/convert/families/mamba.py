"""Mamba (Gu & Dao 2023): transformers' MambaForCausalLM <-> a decoder of mixer-only SSM layers.

Every layer is RMSNorm -> MambaMixer -> residual (no feed-forward, no positions); a final RMSNorm
`norm_f` and an LM head tied to the embeddings. The mixer's tensors keep their names in llmzoo
(llmzoo.nn.mamba), so the key map is a prefix change.
"""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError

LAYER = "backbone.layers.{i}."
MIXER_TENSORS = ("A_log", "D", "conv1d.weight", "conv1d.bias", "in_proj.weight", "in_proj.bias", "x_proj.weight",
                 "dt_proj.weight", "dt_proj.bias", "out_proj.weight", "out_proj.bias")

KEY_MAP = {
    "backbone.embeddings.weight": "embeddings.tokens.weight",
    "backbone.embedding.weight": "embeddings.tokens.weight",  # the original state-spaces checkpoints' spelling
    "backbone.norm_f.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
    LAYER + "norm.weight": "layers.{i}.attn_norm.weight",
    **{LAYER + f"mixer.{t}": f"layers.{{i}}.mixer.{t}" for t in MIXER_TENSORS},
}
KEY_MAP["backbone.embeddings.weight"] = KEY_MAP.pop("backbone.embeddings.weight")  # last wins on save: v5's name


def check(hf: dict[str, Any]) -> None:
    act = hf.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise CheckpointError(f"Mamba with hidden_act={act!r} is not supported (llmzoo's mixer uses silu)")


def mamba_from_hf(hf: dict[str, Any]) -> ModelConfig:
    H.require(hf, "hidden_size", "num_hidden_layers", "vocab_size")
    check(hf)
    d = hf["hidden_size"]
    rank = hf.get("time_step_rank", "auto")
    return ModelConfig(
        name=hf.get("_name_or_path") or "mamba", family="mamba", arch="decoder",
        vocab_size=hf["vocab_size"], d_model=d, n_layers=hf["num_hidden_layers"], n_heads=1,
        d_ff=hf.get("intermediate_size") or hf.get("expand", 2) * d,  # unused by mixer-only layers
        max_seq_len=hf.get("max_position_embeddings", 2048),  # no positions; a default context for generation
        position="none", mixers=("mamba",), ffns=("none",),
        ssm_state_size=hf.get("state_size", 16), ssm_expand=hf.get("expand", 2),
        ssm_conv_kernel=hf.get("conv_kernel", 4), ssm_dt_rank=None if rank == "auto" else int(rank),
        ssm_conv_bias=bool(hf.get("use_conv_bias", True)), ssm_proj_bias=bool(hf.get("use_bias", False)),
        norm="rmsnorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        **H.token_ids(hf),
    )


def mamba_to_hf(c: ModelConfig) -> dict[str, Any]:
    mixer_only = all(c.mixer_kind(i) == "mamba" and c.ffn_kind(i) == "none" for i in range(c.n_layers))
    if not mixer_only:
        raise CheckpointError("a Mamba checkpoint has only Mamba mixers and no feed-forward in every layer")
    H.expect(c, "mamba", arch="decoder", head="lm", position="none", norm="rmsnorm", norm_unit_offset=False,
             norm_placement="pre", final_norm=True, embed_scale=None, embed_norm=False, embed_dim=None,
             type_vocab_size=0, lm_head_bias=False, logit_scale=None, logit_scale_rsqrt_d=False,
             ssm_inner_norms=False, share_layers=False)
    return {
        "architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": c.vocab_size,
        "hidden_size": c.d_model, "num_hidden_layers": c.n_layers, "state_size": c.ssm_state_size,
        "expand": c.ssm_expand, "intermediate_size": c.ssm_inner, "conv_kernel": c.ssm_conv_kernel,
        "time_step_rank": c.ssm_rank, "use_bias": c.ssm_proj_bias, "use_conv_bias": c.ssm_conv_bias,
        "hidden_act": "silu", "layer_norm_epsilon": c.norm_eps, "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
    }


FAMILIES = (
    Family("mamba", ("mamba",), "MambaForCausalLM", mamba_from_hf, mamba_to_hf, KEY_MAP,
           base_prefix="backbone.", check=check),
)
