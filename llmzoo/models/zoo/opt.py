"""Meta's OPT suite (open GPT-3 replicas), OPT-IML and Galactica (OPT-style, scientific corpus)."""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

# OPT (Zhang et al. 2022; Naveed et al. 2023): GPT-3's shapes, ReLU MLPs, learned positions stored with an offset
# of 2 (fairseq's padding convention), tied embeddings.
OPT = ModelConfig(
    name="opt-175b", family="opt", arch="decoder", vocab_size=50272, d_model=12288, n_layers=96, n_heads=96,
    d_ff=4 * 12288, max_seq_len=2048, position="learned", position_offset=2, activation="relu", mlp_gated=False,
    mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5, tie_embeddings=True,
    pad_token_id=1, bos_token_id=2, eos_token_id=2,
)
# Zhang et al. 2022, Table 1 (the Foundation Model notes show it).
OPT_SIZES = {
    "opt-125m": (125e6, 12, 768, 12),
    "opt-350m": (331e6, 24, 1024, 16),  # the released checkpoint's count; "350M" is its name
    "opt-1.3b": (1.3e9, 24, 2048, 32),
    "opt-2.7b": (2.7e9, 32, 2560, 32),
    "opt-6.7b": (6.7e9, 32, 4096, 32),
    "opt-13b": (13e9, 40, 5120, 40),
    "opt-30b": (30e9, 48, 7168, 56),
    "opt-66b": (66e9, 64, 9216, 72),
    "opt-175b": (175e9, 96, 12288, 96),
}
OPT_CONFIGS = {n: sized(OPT, n, n_layers=L, d_model=d, n_heads=h, d_ff=4 * d) for n, (_, L, d, h) in OPT_SIZES.items()}
# OPT-350m alone (its config.json: word_embed_proj_dim=512, do_layer_norm_before=false) keeps 512-dim embeddings,
# projected to d_model=1024 and back before the tied head, and is post-norm without a final LayerNorm.
OPT_CONFIGS["opt-350m"] = OPT_CONFIGS["opt-350m"].replace(embed_dim=512, norm_placement="post", final_norm=False)

# Galactica (Taylor et al. 2022): OPT-like, GeLU, learned positions, no biases in dense kernels or
# layer norms, 50k vocabulary with special tokens for citations, steps, SMILES, amino acids.
GALACTICA = sized(OPT, "galactica-120b", vocab_size=50000, d_model=10240, n_layers=96, n_heads=80, d_ff=4 * 10240,
                  activation="gelu", mlp_bias=False, qkv_bias=False, attn_out_bias=False, norm_bias=False,
                  pad_token_id=1, bos_token_id=0, eos_token_id=2)


def _meta(name: str, params: float, year: int, config: ModelConfig | None, **kw) -> ModelCard:
    return ModelCard(name=name, family="opt", kind="decoder", params_published=params, year=year,
                     organisation="Meta", open_weights=True, config=config, **kw)


CARDS = (
    *(
        _meta(
            name, params, 2022, OPT_CONFIGS[name], training_tokens=180e9, context_length=2048,
            source="minaee2024, naveed2023, fm-notes", aliases=("opt",) if name == "opt-175b" else (),
            architecture="GPT-3 replica (ReLU MLP, learned positions) released from 125M to 175B; dynamic loss "
                         "scaling and restarts from earlier checkpoints at lower LR on divergence (Naveed et al. 2023).",
            notes="The Foundation Model notes: OPT-175B matches GPT-3 at 1/7 the carbon footprint. 175B weights on request; "
                  "180B tokens per Zhang et al. 2022.",
        )
        for name, (params, *_) in OPT_SIZES.items()
    ),
    *(
        _meta(
            f"opt-iml-{size}", params, 2022, sized(OPT_CONFIGS[f"opt-{size}"], f"opt-iml-{size}"),
            base_model=f"opt-{size}", context_length=2048, source="minaee2024",
            aliases=("opt-iml",) if size == "175b" else (),
            architecture="OPT instruction-tuned on OPT-IML Bench (~2000 NLP tasks).",
        )
        for size, params in (("30b", 30e9), ("175b", 175e9))
    ),
    _meta(
        "galactica-120b", 120e9, 2022, GALACTICA, training_tokens=450e9, context_length=2048, source="minaee2024",
        aliases=("galactica",),
        architecture="OPT-style decoder without biases, GeLU, trained on a curated scientific corpus (papers, "
                     "references, knowledge bases) with task tokens for citations and step-by-step reasoning.",
        notes="Minaee et al. 2024: 120B, 450B tokens; beats Chinchilla and PaLM-540B on some reasoning benchmarks. "
              "Shape (96 layers, d_model 10240, 80 heads) from Taylor et al. 2022.",
    ),
)
