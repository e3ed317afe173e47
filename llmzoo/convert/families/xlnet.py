"""XLNet (Yang et al. 2019): two-stream relative attention, see llmzoo/models/xlnet.py.

Checkpoints store q/k/v/r/o as (d_model, n_head, d_head) tensors used through einsums; ours are
Linear weights, so the converter reshapes (and transposes q/k/v/r). Memory (mem_len) is a
run-time setting that does not change the weights and is not used by llmzoo.
"""

from __future__ import annotations

from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.convert import hf_config as H
from llmzoo.convert.families.bert import architecture_for, head_from_hf, hf_activation, wb
from llmzoo.convert.hf import Family, Transform
from llmzoo.errors import CheckpointError

XLNET_HEADS = {"Model": "none", "LMHeadModel": "lm"}


def _extra(attn_type: str, clamp_len: int) -> tuple[tuple[str, Any], ...]:
    """Only the options that differ from XLNet's defaults (bi, no clamp), so a config without
    them reads back equal."""
    return tuple(kv for kv, default in ((("attn_type", attn_type), "bi"), (("clamp_len", clamp_len), -1))
                 if kv[1] != default)


def xlnet_from_hf(hf: dict[str, Any]) -> ModelConfig:
    H.require(hf, "d_model", "n_layer", "n_head", "d_inner", "vocab_size")
    head = head_from_hf(hf, "XLNet", XLNET_HEADS)
    if hf.get("bi_data"):
        raise CheckpointError("XLNet with bi_data=True (bidirectional data pipeline) is not supported")
    attn_type = hf.get("attn_type", "bi")
    if attn_type == "uni" and hf.get("same_length"):
        raise CheckpointError("XLNet with attn_type='uni' and same_length=True is not supported")
    d_head = hf.get("d_head") or hf["d_model"] // hf["n_head"]
    return ModelConfig(
        name=hf.get("_name_or_path") or "xlnet", family="xlnet", arch="encoder", head=head,
        attention_type="two_stream", vocab_size=hf["vocab_size"], d_model=hf["d_model"], n_layers=hf["n_layer"],
        n_heads=hf["n_head"], head_dim=d_head, d_ff=hf["d_inner"], max_seq_len=hf.get("max_position_embeddings") or 512,
        position="none", activation=H.activation(hf, "ff_activation", "gelu"), mlp_gated=False, mlp_bias=True,
        norm="layernorm", norm_eps=hf.get("layer_norm_eps", 1e-12), norm_placement="post", final_norm=False,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        lm_head_bias=True,  # XLNet's lm_loss always has a bias (llmzoo/models/xlnet.py builds it)
        extra=_extra(attn_type, int(hf.get("clamp_len", -1))), **H.token_ids(hf),
    )


def xlnet_to_hf(c: ModelConfig) -> dict[str, Any]:
    return {
        "architectures": [architecture_for(c.head, "XLNet", XLNET_HEADS)], "model_type": "xlnet",
        "vocab_size": c.vocab_size, "d_model": c.d_model, "n_layer": c.n_layers, "n_head": c.n_heads,
        "d_head": c.hd, "d_inner": c.d_ff, "ff_activation": hf_activation(c.activation),
        "layer_norm_eps": c.norm_eps, "attn_type": c.get_extra("attn_type", "bi"), "bi_data": False,
        "clamp_len": c.get_extra("clamp_len", -1), "same_length": False, "tie_word_embeddings": c.tie_embeddings,
        "pad_token_id": c.pad_token_id, "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
    }


def _heads_to_linear(out: bool):
    """(d, n, hd) einsum tensors <-> Linear weights: (n*hd, d) for inputs, (d, n*hd) for the output."""
    def to_zoo(ts, c):
        t = ts[0].reshape(ts[0].shape[0], -1)
        return [t.contiguous() if out else t.t().contiguous()]

    def to_hf(ts, c):
        t = ts[0] if out else ts[0].t()
        return [t.reshape(c.d_model, c.n_heads, c.hd).contiguous()]

    return to_zoo, to_hf


LAYER, ZOO = "transformer.layer.{i}.", "layers.{i}."
PROJECTIONS = tuple(
    Transform((f"{LAYER}rel_attn.{p}",), (f"{ZOO}self_attn.{p}_proj.weight",), *_heads_to_linear(p == "o"))
    for p in ("q", "k", "v", "r", "o")
)
XLNET_KEYS = {
    "transformer.word_embedding.weight": "embeddings.tokens.weight",
    "transformer.mask_emb": "mask_emb",
    **{f"{LAYER}rel_attn.{p}": f"{ZOO}self_attn.{p}" for p in ("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed")},
    **wb(LAYER + "rel_attn.layer_norm", ZOO + "attn_norm"),
    **wb(LAYER + "ff.layer_1", ZOO + "mlp.up_proj"),
    **wb(LAYER + "ff.layer_2", ZOO + "mlp.down_proj"),
    **wb(LAYER + "ff.layer_norm", ZOO + "mlp_norm"),
    **wb("lm_loss", "lm_head"),
}

FAMILIES = (
    Family("xlnet", ("xlnet",), "XLNetModel", xlnet_from_hf, xlnet_to_hf, XLNET_KEYS, transforms=PROJECTIONS,
           base_prefix="transformer."),
)
