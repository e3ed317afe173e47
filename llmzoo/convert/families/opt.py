"""OPT (Zhang et al. 2022, Meta): a GPT-3-style decoder with ReLU MLPs and learned positions
whose table starts at index 2 (a fairseq legacy: slots 0/1 were reserved for padding).

Pre-norm in every size but 350m, which is post-norm (do_layer_norm_before=false, and then no
final LayerNorm). OPT-350m also projects 512-d embeddings to its 1024-d hidden size
(word_embed_proj_dim, project_in/project_out, no bias): ModelConfig.embed_dim, which the decoder
applies to the token embeddings alone (positions are hidden-size) and undoes before the LM head.
"""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError

POSITION_OFFSET = 2
LAYER = "model.decoder.layers.{i}."

KEY_MAP = {
    "model.decoder.embed_tokens.weight": "embeddings.tokens.weight",
    "model.decoder.embed_positions.weight": "embeddings.positions.weight",
    "model.decoder.final_layer_norm.weight": "norm.weight",
    "model.decoder.final_layer_norm.bias": "norm.bias",
    "lm_head.weight": "lm_head.weight",
    "model.decoder.project_in.weight": "embeddings.project.weight",
    "model.decoder.project_out.weight": "project_out.weight",
    LAYER + "self_attn_layer_norm.weight": "layers.{i}.attn_norm.weight",
    LAYER + "self_attn_layer_norm.bias": "layers.{i}.attn_norm.bias",
    LAYER + "final_layer_norm.weight": "layers.{i}.mlp_norm.weight",
    LAYER + "final_layer_norm.bias": "layers.{i}.mlp_norm.bias",
    **{LAYER + f"self_attn.{hf}.{w}": f"layers.{{i}}.self_attn.{zoo}.{w}"
       for hf, zoo in (("q_proj", "q_proj"), ("k_proj", "k_proj"), ("v_proj", "v_proj"), ("out_proj", "o_proj"))
       for w in ("weight", "bias")},
    **{LAYER + f"{hf}.{w}": f"layers.{{i}}.mlp.{zoo}.{w}"
       for hf, zoo in (("fc1", "up_proj"), ("fc2", "down_proj")) for w in ("weight", "bias")},
}


def check(hf: dict[str, Any]) -> None:
    if hf.get("layer_norm_elementwise_affine", True) is False:
        raise CheckpointError("OPT with layer_norm_elementwise_affine=false (LayerNorms without weights) "
                              "is not supported")


def opt_from_hf(hf: dict[str, Any]) -> ModelConfig:
    H.require(hf, "hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim", "vocab_size")
    pre_norm = bool(hf.get("do_layer_norm_before", True))
    bias = bool(hf.get("enable_bias", True))
    proj = hf.get("word_embed_proj_dim")
    return ModelConfig(
        name=hf.get("_name_or_path") or "opt", family="opt", arch="decoder",
        vocab_size=hf["vocab_size"], d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"], d_ff=hf["ffn_dim"], max_seq_len=hf.get("max_position_embeddings", 2048),
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        embed_dim=proj if proj is not None and proj != hf["hidden_size"] else None,
        position="learned", position_offset=POSITION_OFFSET,
        qkv_bias=bias, attn_out_bias=bias, mlp_bias=bias,
        activation=H.activation(hf, "activation_function", "relu"), mlp_gated=False,
        norm="layernorm", norm_eps=1e-5,  # OPT's nn.LayerNorm(...) always uses the default eps
        norm_placement="pre" if pre_norm else "post",
        final_norm=pre_norm and not hf.get("_remove_final_layer_norm", False),
        **H.token_ids(hf),
    )


def opt_to_hf(c: ModelConfig) -> dict[str, Any]:
    H.expect_classic_decoder(c, "opt", position="learned", position_offset=POSITION_OFFSET, norm_eps=1e-5,
                             parallel_residual=False, qkv_bias=c.mlp_bias, attn_out_bias=c.mlp_bias,
                             embed_norm=False, lm_head_bias=False, attn_scale=None, layer_pattern=None,
                             sliding_window=None, embed_dim=c.embed_dim)
    pre = c.norm_placement == "pre"
    if not pre and c.final_norm:
        raise CheckpointError("a post-norm opt checkpoint has no final LayerNorm, but this config has final_norm=True")
    return {
        "architectures": ["OPTForCausalLM"], "model_type": "opt", "vocab_size": c.vocab_size,
        "hidden_size": c.d_model, "word_embed_proj_dim": c.emb_dim, "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads, "ffn_dim": c.d_ff, "max_position_embeddings": c.max_seq_len,
        "do_layer_norm_before": pre, "_remove_final_layer_norm": pre and not c.final_norm,
        "enable_bias": c.mlp_bias, "layer_norm_elementwise_affine": True,
        "activation_function": H.activation_to_hf(c.activation), "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
    }


FAMILIES = (
    Family("opt", ("opt",), "OPTForCausalLM", opt_from_hf, opt_to_hf, KEY_MAP, base_prefix="model.", check=check),
)
