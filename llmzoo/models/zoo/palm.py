"""Google's PaLM family: PaLM, U-PaLM, Flan-PaLM, Minerva, Med-PaLM (configs), PaLM 2 / Med-PaLM 2 (cards).

PaLM (Chowdhery et al. 2022; Naveed et al. 2023): parallel attention + feed-forward, SwiGLU, RoPE, multi-query
attention, no biases in dense kernels or layer norms, shared input/output embeddings, 256k vocabulary.
"""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

PALM = ModelConfig(
    name="palm-540b", family="palm", arch="decoder", vocab_size=256000, d_model=18432, n_layers=118, n_heads=48,
    n_kv_heads=1, head_dim=256, d_ff=4 * 18432, max_seq_len=2048, position="rope", activation="silu",
    mlp_gated=True, mlp_bias=False, qkv_bias=False, attn_out_bias=False, norm="layernorm", norm_bias=False,
    parallel_residual=True, parallel_norms=1, tie_embeddings=True,
)
# Chowdhery et al. 2022, Table 1: exact counts 8.63B, 62.50B, 540.35B; d_ff = 4 d_model, head size 256.
PALM_SIZES = {"8b": (8.63e9, 32, 4096, 16), "62b": (62.50e9, 64, 8192, 32), "540b": (540.35e9, 118, 18432, 48)}


def _palm_config(name: str, size: str) -> ModelConfig:
    _, layers, d, heads = PALM_SIZES[size]
    return sized(PALM, name, n_layers=layers, d_model=d, n_heads=heads, d_ff=4 * d)


def _google(name: str, params: float | None, year: int, config: ModelConfig | None, **kw) -> ModelCard:
    return ModelCard(name=name, family="palm", kind="decoder", params_published=params, year=year,
                     organisation="Google", open_weights=False, config=config, **kw)


PALM_ARCH = ("Parallel attention/feed-forward blocks (~15% faster training), SwiGLU, RoPE, multi-query attention, "
             "no biases, shared input-output embeddings; trained with Pathways on 6144 TPU v4 chips.")

CARDS = (
    *(
        _google(
            f"palm-{size}", params, 2022, _palm_config(f"palm-{size}", size), training_tokens=780e9,
            context_length=2048, source="minaee2024, zoo-lecture, naveed2023, fm-notes", aliases=("palm",) if size == "540b" else (),
            architecture=PALM_ARCH,
            notes="Minaee et al. 2024: 8B/62B/540B on 780B tokens; loss spikes handled by restarting 100 steps earlier and "
                  "skipping 200-500 batches (Naveed et al. 2023). Exact counts from Table 1 of the paper.",
        )
        for size, (params, *_) in PALM_SIZES.items()
    ),
    *(
        _google(
            f"u-palm-{size}", params, 2022, _palm_config(f"u-palm-{size}", size), base_model=f"palm-{size}",
            training_tokens=1.3e9, context_length=2048, source="minaee2024, naveed2023", aliases=("u-palm",) if size == "540b" else (),
            architecture="PaLM continued for a few steps with UL2R: the UL2 mixture of denoisers, the causal decoder "
                         "turned into a non-causal (prefix) one; ~2x compute savings (Minaee et al. 2024 and Naveed et al. 2023).",
            notes="Minaee et al. 2024's '1.3B' tokens are the extra UL2R training, ~0.1% of PaLM's compute (Naveed et al. 2023).",
        )
        for size, (params, *_) in PALM_SIZES.items()
    ),
    *(
        _google(
            f"flan-palm-{size}", params, 2022, _palm_config(f"flan-palm-{size}", size), base_model=f"palm-{size}",
            context_length=2048, source="minaee2024", aliases=("flan-palm",) if size == "540b" else (),
            architecture="PaLM instruction-tuned on 1,836 tasks (473 datasets, 146 task categories) including "
                         "chain-of-thought data; +9.4% over PaLM-540B on average.",
            notes="Minaee et al. 2024 calls Flan-PaLM an instruction-tuned U-PaLM; in Chung et al. 2022 that model is "
                  "Flan-U-PaLM and Flan-PaLM starts from PaLM.",
        )
        for size, (params, *_) in PALM_SIZES.items()
    ),
    *(
        _google(
            f"minerva-{size}", params, 2022, _palm_config(f"minerva-{size}", size), base_model=f"palm-{size}",
            context_length=2048, source="minaee2024", aliases=("minerva",) if size == "540b" else (),
            architecture="PaLM further trained on technical content (arXiv, math web pages) for quantitative reasoning.",
            notes="Sizes 8B/62B/540B from Lewkowycz et al. 2022 (the surveys give none).",
        )
        for size, (params, *_) in PALM_SIZES.items()
    ),
    _google(
        "med-palm-540b", 540e9, 2022, _palm_config("med-palm-540b", "540b"), base_model="flan-palm-540b",
        training_tokens=780e9, context_length=2048, source="minaee2024", aliases=("med-palm",),
        architecture="Flan-PaLM adapted to medical question answering with instruction prompt tuning (a few "
                     "exemplars, parameter-efficient).",
        notes="Minaee et al. 2024 lists base PaLM, 540B, 780B tokens (PaLM's pretraining tokens).",
    ),
    _google(
        "palm-2", 340e9, 2023, None, training_tokens=3.6e12, source="minaee2024, naveed2023", aliases=("palm2",),
        architecture="Smaller, multilingual, more compute-efficient successor of PaLM trained on a mixture of "
                     "objectives; special control tokens against toxicity and memorisation (Naveed et al. 2023).",
        notes="Minaee et al. 2024's 340B / 3.6T come from press reports; Google's technical report gives no count.",
    ),
    _google(
        "med-palm-2", None, 2023, None, base_model="palm-2", source="minaee2024",
        architecture="PaLM 2 with medical-domain fine-tuning and ensemble refinement prompting; 86.5% on MedQA.",
    ),
)
