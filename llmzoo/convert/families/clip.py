"""CLIP (transformers' CLIPModel, model_type "clip"): two towers in one checkpoint.

The towers' blocks are llmzoo's Block, so their tensors are renames (out_proj -> o_proj,
layer_norm1 -> attn_norm, fc1 -> up_proj). A CLIPConfig is written as config.json with a
text_config and a vision_config; saving checks by round trip (llmzoo/convert/round_trip.py, per
tower) that the CLIPConfig read back from it is the model's, so nothing the layout cannot hold is dropped.
"""

from __future__ import annotations

from typing import Any

from llmzoo.convert import hf_config as H
from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError
from llmzoo.models.clip_config import CLIPConfig, VisionConfig, clip_text_config

BLOCK = {  # transformers' CLIPEncoderLayer -> llmzoo's Block
    "self_attn.q_proj": "self_attn.q_proj", "self_attn.k_proj": "self_attn.k_proj",
    "self_attn.v_proj": "self_attn.v_proj", "self_attn.out_proj": "self_attn.o_proj",
    "layer_norm1": "attn_norm", "layer_norm2": "mlp_norm", "mlp.fc1": "mlp.up_proj", "mlp.fc2": "mlp.down_proj",
}


def _key_map() -> dict[str, str]:
    keys = {
        "text_model.embeddings.token_embedding.weight": "text.embeddings.tokens.weight",
        "text_model.embeddings.position_embedding.weight": "text.embeddings.positions.weight",
        "vision_model.embeddings.class_embedding": "vision.class_embedding",
        "vision_model.embeddings.patch_embedding.weight": "vision.patch_embedding.weight",
        "vision_model.embeddings.position_embedding.weight": "vision.positions.weight",
        "text_projection.weight": "text_projection.weight",
        "visual_projection.weight": "visual_projection.weight",
        "logit_scale": "logit_scale",
    }
    norms = {"text_model.final_layer_norm": "text.norm", "vision_model.pre_layrnorm": "vision.pre_norm",
             "vision_model.post_layernorm": "vision.post_norm"}
    for hf_tower, tower in (("text_model", "text"), ("vision_model", "vision")):
        for hf, ours in BLOCK.items():
            norms[f"{hf_tower}.encoder.layers.{{i}}.{hf}"] = f"{tower}.layers.{{i}}.{ours}"
    for hf, ours in norms.items():
        keys[hf + ".weight"], keys[hf + ".bias"] = ours + ".weight", ours + ".bias"
    return keys


KEY_MAP = _key_map()
IGNORE = (r"embeddings\.position_ids$",)  # index buffers that checkpoints before transformers 4.31 saved


def _sub_config(hf: dict[str, Any], key: str) -> dict[str, Any]:
    sub = dict(hf.get(key) or {})
    sub.update(hf.get(f"{key}_dict") or {})  # the older spelling, which transformers lets win
    return sub


def _image_size(v: dict[str, Any], key: str, default: int) -> int:
    size = v.get(key, default)
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise CheckpointError(f"CLIP vision_config {key}={size} is not square; llmzoo's ViT needs square images/patches")
        size = size[0]
    return int(size)


def clip_from_hf(hf: dict[str, Any]) -> CLIPConfig:
    t, v = _sub_config(hf, "text_config"), _sub_config(hf, "vision_config")
    ids = H.token_ids({"pad_token_id": t.get("pad_token_id", 1), "bos_token_id": t.get("bos_token_id", 49406),
                       "eos_token_id": t.get("eos_token_id", 49407)})
    text = clip_text_config(
        vocab_size=t.get("vocab_size", 49408), d_model=t.get("hidden_size", 512),
        n_layers=t.get("num_hidden_layers", 12), n_heads=t.get("num_attention_heads", 8),
        d_ff=t.get("intermediate_size", 2048), max_seq_len=t.get("max_position_embeddings", 77),
        activation=H.activation(t, "hidden_act", "quick_gelu"), norm_eps=float(t.get("layer_norm_eps", 1e-5)),
        attn_dropout=float(t.get("attention_dropout", 0.0)), **ids,
    )
    vision = VisionConfig(
        image_size=_image_size(v, "image_size", 224), patch_size=_image_size(v, "patch_size", 32),
        n_channels=v.get("num_channels", 3), d_model=v.get("hidden_size", 768),
        n_layers=v.get("num_hidden_layers", 12), n_heads=v.get("num_attention_heads", 12),
        d_ff=v.get("intermediate_size", 3072), activation=H.activation(v, "hidden_act", "quick_gelu"),
        norm_eps=float(v.get("layer_norm_eps", 1e-5)), attn_dropout=float(v.get("attention_dropout", 0.0)),
    )
    return CLIPConfig(name=hf.get("_name_or_path") or "clip", text=text, vision=vision,
                      projection_dim=hf.get("projection_dim", 512),
                      logit_scale_init=float(hf.get("logit_scale_init_value", 2.6592)))


def clip_to_hf(c: CLIPConfig) -> dict[str, Any]:
    t, v = c.text, c.vision
    hf = {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": c.projection_dim,
        "logit_scale_init_value": c.logit_scale_init,
        "text_config": {
            "model_type": "clip_text_model", "vocab_size": t.vocab_size, "hidden_size": t.d_model,
            "intermediate_size": t.d_ff, "projection_dim": c.projection_dim, "num_hidden_layers": t.n_layers,
            "num_attention_heads": t.n_heads, "max_position_embeddings": t.max_seq_len,
            "hidden_act": H.activation_to_hf(t.activation), "layer_norm_eps": t.norm_eps,
            "attention_dropout": t.attn_dropout, "pad_token_id": t.pad_token_id, "bos_token_id": t.bos_token_id,
            "eos_token_id": t.eos_token_id,
        },
        "vision_config": {
            "model_type": "clip_vision_model", "hidden_size": v.d_model, "intermediate_size": v.d_ff,
            "projection_dim": c.projection_dim, "num_hidden_layers": v.n_layers, "num_attention_heads": v.n_heads,
            "num_channels": v.n_channels, "image_size": v.image_size, "patch_size": v.patch_size,
            "hidden_act": H.activation_to_hf(v.activation), "layer_norm_eps": v.norm_eps,
            "attention_dropout": v.attn_dropout,
        },
    }
    return hf


FAMILIES = (
    Family("clip", ("clip",), "CLIPModel", clip_from_hf, clip_to_hf, KEY_MAP, ignore=IGNORE),
)
