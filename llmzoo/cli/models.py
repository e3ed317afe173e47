"""`llmzoo models` (the catalog) and `llmzoo show NAME` (one model card, its architecture, compute and memory).

Both read the catalog and count parameters analytically (llmzoo.flops), so they never build a model and
`llmzoo models --json` does not import torch.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections import Counter
from typing import Any

from llmzoo.errors import LlmzooError
from llmzoo.models.zoo.card import KINDS, ModelCard, citations


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the zoo: every model of the surveys, with published and counted sizes",
                              description="List every model card. PUBLISHED is the figure the papers/surveys give; "
                                          "PARAMS is counted from llmzoo's full-size config (- when the "
                                          "architecture is not public).")
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    p.add_argument("--kind", choices=KINDS, help="only encoders, decoders, encoder-decoders or others")
    p.add_argument("--family", help="only this family (e.g. llama, gpt2, bert, t5)")
    p.set_defaults(func=_models)

    s = subparsers.add_parser("show", help="a model's card, architecture, parameter count, FLOPs and memory",
                              description="Show one model card with its full-size architecture, parameters "
                                          "counted from the config, FLOPs per token and memory to run and train it.")
    s.add_argument("name", help="catalog name, e.g. llama-2-7b, gpt-3-175b, bert-base (see `llmzoo models`)")
    s.add_argument("--seq-len", type=int, default=None, help="sequence length for FLOPs and memory (default: context)")
    s.add_argument("--json", action="store_true", help="print the card and numbers as JSON")
    s.set_defaults(func=_show)


# ------------------------------------------------------------------------------------------------
# models


def card_row(card: ModelCard) -> dict[str, Any]:
    """The JSON object `llmzoo models --json` prints for one card."""
    from llmzoo.flops import count_params

    row = card.to_dict()
    row["params"] = count_params(card.config) if card.config is not None else None
    if card.composite is not None:  # CLIP: counted from its CLIPConfig
        row["params"] = card.composite.count_params()
    if card.config is not None and card.config.n_experts:
        row["params_active"] = count_params(card.config, active=True)
    return row


def _models(args: argparse.Namespace) -> int:
    from llmzoo.hub import suggest
    from llmzoo.models.zoo import catalog

    cards = catalog()
    if args.kind:
        cards = [c for c in cards if c.kind == args.kind]
    if args.family:
        counts = Counter(c.family for c in catalog())
        families = sorted(counts, key=lambda f: (-counts[f], f))  # the big families first among equal matches
        if args.family not in families:
            raise LlmzooError(f"unknown family {args.family!r}; {suggest(args.family, families)}")
        cards = [c for c in cards if c.family == args.family]
    rows = [card_row(c) for c in cards]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from llmzoo.scaling import human_count

    header = ("NAME", "KIND", "FAMILY", "YEAR", "PUBLISHED", "PARAMS", "OPEN", "LLMZOO")
    table = [header] + [
        (r["name"], r["kind"], r["family"], str(r["year"]), human_count(r["params_published"]),
         human_count(r["params"]), "yes" if r["open_weights"] else "no", r["implements"])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\n{len(rows)} models; `llmzoo show NAME` for a card.")
    return 0


# ------------------------------------------------------------------------------------------------
# show


def conversion_family(card: ModelCard) -> str | None:
    """Name of the HF converter family that saves this config, if its transformers layout can express
    the config (GPT-3's alternating sparse attention, say, has none: `llmzoo convert` refuses it)."""
    if card.config is None:
        return None
    from llmzoo.convert.save import hf_config_for

    try:
        return hf_config_for(card.config)[0].name
    except LlmzooError:  # no converter for this family, or a field its layout cannot express
        return None


def architecture_summary(c) -> list[tuple[str, str]]:
    """The config's main fields as (label, value) lines."""
    heads = f"{c.n_heads} x {c.hd}"
    if c.kv_heads == 1:
        heads += " (multi-query)"
    elif c.kv_heads != c.n_heads:
        heads += f" (grouped-query, {c.kv_heads} KV heads)"
    layers = str(c.n_layers) if c.arch != "encoder_decoder" else f"{c.n_layers} encoder + {c.decoder_layers} decoder"
    if c.share_layers:
        layers += " (one shared block)"
    if c.top_query_layer:
        layers += " + a top query layer (PanGu-alpha: queries are learned position embeddings)"
    ff = f"{c.d_ff}, {'gated ' if c.mlp_gated else ''}{c.activation}"
    if c.n_experts and any(c.ffn_kind(i) == "moe" for i in range(c.n_layers)):
        ff += moe_summary(c)
    if any(c.ffn_kind(i) == "rre" for i in range(c.n_layers)):
        ff += rre_summary(c)
    position = c.position
    if c.position == "rope":
        position += f" (base {c.rope_base:g}" + (f", {c.rope_fraction:g} of head dims" if c.rope_fraction < 1 else "")
        position += f", {c.rope_scaling.kind} x{c.rope_scaling.factor:g} scaling)" if c.rope_scaling else ")"
    if c.position == "xl_relative":  # Dai et al. 2019
        position += (" (Transformer-XL: sinusoidal relative encodings, per-layer W_R, shared u/v biases; "
                     + (f"recurrence memory of {c.mem_len} tokens)" if c.mem_len else "no recurrence memory)"))
    block = f"{c.norm}, {c.norm_placement}-norm" + (", parallel attention/MLP" if c.parallel_residual else "")
    if c.deepnorm:  # DeepNet / GLM-130B
        block += f", DeepNorm (residual x{c.deepnorm_alpha:.3g}, init gain {c.deepnorm_beta:.3g})"
    if c.embed_grad_scale is not None:
        block += f", embedding gradient x{c.embed_grad_scale:g}"
    if c.sliding_window:
        attn = f"window {c.sliding_window}" + (f", pattern {'/'.join(c.layer_pattern)}" if c.layer_pattern else "")
    else:
        attn = "full"
    biases = [n for n, on in (("qkv", c.qkv_bias), ("out", c.attn_out_bias), ("mlp", c.mlp_bias)) if on]
    embeddings = f"{c.vocab_size} x {c.emb_dim}" + (" (factorised)" if c.emb_dim != c.d_model else "")
    if c.head in ("lm", "mlm", "pretraining"):
        embeddings += ", tied output" if c.tie_embeddings else ", untied output"
    return [
        ("arch", f"{c.arch} (head: {c.head})"), ("layers", layers), ("d_model", str(c.d_model)),
        ("attention heads", heads), ("attention span", attn), ("feed-forward", ff), ("positions", position),
        ("norm / block", block), ("biases", ", ".join(biases) or "none"), ("embeddings", embeddings),
        ("context", str(c.max_seq_len)),
    ]


def moe_summary(c) -> str:
    """Where the MoE layers are and how they route: '; MoE in every other layer: 64 experts, top-2'."""
    spec = c.ffns or ("moe",)
    if set(spec) == {"moe"}:
        where = "every layer"
    elif spec.count("moe") == 1:
        where = "every other layer" if len(spec) == 2 else f"one layer in {len(spec)}"
    else:
        where = "layers " + ", ".join(str(i) for i in range(c.n_layers) if c.ffn_kind(i) == "moe")
    experts = f"{c.n_experts} experts"
    if c.expert_mlp_gated != c.mlp_gated:
        experts += f" ({'gated ' if c.expert_mlp_gated else ''}{c.activation})"
    routing = "Switch top-1 routing" if c.moe_kind == "switch" else f"top-{c.n_experts_per_token}"
    if c.moe_expert_capacity is not None:
        routing += f", capacity {c.moe_expert_capacity} tokens per expert and sequence"
    elif c.moe_capacity_factor is not None:
        routing += f", capacity factor {c.moe_capacity_factor:g}"
    return f"; MoE in {where}: {experts}, {routing}"


def rre_summary(c) -> str:
    """PanGu-Sigma's Random Routed Experts layers: where, how many experts in how many domain groups."""
    layers = [i for i in range(c.n_layers) if c.ffn_kind(i) == "rre"]
    where = f"layers {layers[0]}-{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1)) else \
        "layers " + ", ".join(map(str, layers))
    return (f"; Random Routed Experts in {where}: {c.n_experts} experts in {c.rre_domains} domain groups of "
            f"{c.n_experts // c.rre_domains}, one per token by a fixed random map of its token id (no router)")


def _has_family(name: str) -> bool:
    try:
        from llmzoo.convert.families import family_by_name

        family_by_name(name)
        return True
    except Exception:  # no converter for this family
        return False


def composite_summary(c) -> list[tuple[str, str]]:
    """A two-tower config (CLIP) as (label, value) lines; a config with its own `summary` (RETRO) gives them."""
    if hasattr(c, "summary"):
        return c.summary()
    t, v = c.text, c.vision
    return [
        ("text tower", f"{t.n_layers} layers, d_model {t.d_model}, {t.n_heads} heads, d_ff {t.d_ff} {t.activation}, "
                       f"vocab {t.vocab_size}, context {t.max_seq_len}, causal, pooled at EOS"),
        ("image tower", f"ViT {v.image_size}px / {v.patch_size}px patches, {v.n_layers} layers, d_model {v.d_model}, "
                        f"{v.n_heads} heads, d_ff {v.d_ff} {v.activation}, class token pooled"),
        ("joint space", f"{c.projection_dim} dims, learned temperature (log init {c.logit_scale_init:g})"),
    ]


def show_data(card: ModelCard, seq_len: int | None = None) -> dict[str, Any]:
    """Everything `llmzoo show` prints, as plain data."""
    from llmzoo.flops import count_params, flops_per_token
    from llmzoo.scaling import inference_memory, kv_cache_bytes_per_token, training_memory

    data: dict[str, Any] = {"card": card.to_dict()}
    c = card.config
    if card.composite is not None:
        return {**data, "config": card.composite.to_dict(), "params": card.composite.count_params(),
                "hf_conversion": card.family if _has_family(card.family) else None}
    if c is None:
        return data
    if seq_len is not None and seq_len < 1:
        raise LlmzooError(f"--seq-len must be >= 1, got {seq_len}")
    seq = seq_len or c.max_seq_len
    n = count_params(c)
    fl = flops_per_token(c, seq)
    mem = training_memory(n, config=c, seq_len=seq)
    data.update(
        config=c.to_dict(), params=n, params_active=count_params(c, active=True) if c.n_experts else None,
        hf_conversion=conversion_family(card),
        flops_per_token={"seq_len": seq, "matmul_params": fl.params, "attention": fl.attention,
                         "forward": fl.forward, "training": fl.training},
        inference_memory={**inference_memory(c), "kv_cache_full_context_bf16": kv_cache_bytes_per_token(c) * seq},
        training_memory={"seq_len": seq, "micro_batch": 1, "weights": mem.weights, "grads": mem.grads,
                         "optimizer": mem.optimizer, "activations": mem.activations, "total": mem.total},
    )
    return data


# Values start in one column, two spaces past the longest label ("active per token").
_VALUE_COLUMN = 20


def _wrap(label: str, text: str, indent: int = _VALUE_COLUMN) -> str:
    # A label longer than the column still gets two spaces rather than running into its value.
    head = f"  {label}".ljust(indent) if len(label) + 4 <= indent else f"  {label}  "
    return textwrap.fill(text, width=100, initial_indent=head, subsequent_indent=" " * indent)


def _show(args: argparse.Namespace) -> int:
    from llmzoo.models.zoo import get_card
    from llmzoo.scaling import human_bytes, human_count

    card = get_card(args.name)
    data = show_data(card, args.seq_len)
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    print(f"{card.name}  ({card.organisation}, {card.year})")
    counted = (f"{human_count(data['params'])} counted from the config" if data.get("params") is not None
               else "no public architecture")
    lines = [
        ("kind", card.kind), ("family", card.family), ("published size", human_count(card.params_published)),
        ("parameters", counted), ("training tokens", human_count(card.training_tokens)),
        ("context", str(card.context_length or (card.config.max_seq_len if card.config else "-"))),
        ("base model", card.base_model or "-"), ("open weights", "yes" if card.open_weights else "no"),
    ]
    if data.get("params_active"):
        lines.insert(4, ("active per token", human_count(data["params_active"])))
    llmzoo = card.implements
    if "hf_conversion" in data:
        fam = data["hf_conversion"]
        llmzoo += f"; HF conversion: {'yes (family ' + repr(fam) + ')' if fam else 'not yet'}"
    lines.append(("llmzoo", llmzoo))
    for label, value in lines:
        print(_wrap(label, value))
    print(_wrap("architecture", card.architecture))
    if card.approximation:
        print(_wrap("approximation", card.approximation))
    if card.notes:
        print(_wrap("notes", card.notes))
    print(_wrap("source", "; ".join(citations(card.source))))
    if card.composite is not None:
        print("\narchitecture (full-size composite config, one line per part)")
        for label, value in composite_summary(card.composite):
            print(_wrap(label, value))
    if card.config is None:
        return 0
    print("\narchitecture (full-size ModelConfig)")
    for label, value in architecture_summary(card.config):
        print(_wrap(label, value))
    f = data["flops_per_token"]
    print(f"\ncompute per token (sequence of {f['seq_len']}; N = {human_count(f['matmul_params'])} matmul weights)")
    print(_wrap("forward", f"{f['forward']:.3g} FLOPs = 2N + attention {f['attention']:.3g}"))
    print(_wrap("training", f"{f['training']:.3g} FLOPs = 3 x forward (backward costs twice the forward)"))
    m = data["inference_memory"]
    print("\nmemory to run")
    print(_wrap("weights", ", ".join(f"{k.split('_')[1]} {human_bytes(v)}" for k, v in m.items() if k.startswith("weights"))))
    if card.config.arch != "encoder":  # encoders see the whole input at once: nothing to cache
        print(_wrap("KV cache (bf16)", f"{human_bytes(m['kv_cache_per_token_bf16'])} per token, "
                                       f"{human_bytes(m['kv_cache_full_context_bf16'])} for {f['seq_len']} tokens"))
    t = data["training_memory"]
    print(f"\nmemory to train (mixed-precision AdamW, one device, micro-batch 1, sequence {t['seq_len']})")
    for key in ("weights", "grads", "optimizer", "activations", "total"):
        print(_wrap(key, human_bytes(t[key])))
    print("  (see `llmzoo scaling memory` for data/tensor/pipeline parallelism and ZeRO)")
    return 0
