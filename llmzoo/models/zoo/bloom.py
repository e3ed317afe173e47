"""BigScience's BLOOM (open-access multilingual decoder) and BLOOMZ (its multitask fine-tune)."""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

# BLOOM (Le Scao et al. 2022; Naveed et al. 2023): ALiBi instead of position embeddings and an extra LayerNorm right
# after the embedding layer (from bitsandbytes' StableEmbedding), both for training stability.
BLOOM = ModelConfig(
    name="bloom-176b", family="bloom", arch="decoder", vocab_size=250880, d_model=14336, n_layers=70, n_heads=112,
    d_ff=4 * 14336, max_seq_len=2048, position="alibi", embed_norm=True, activation="gelu_tanh", mlp_gated=False,
    mlp_bias=True, qkv_bias=True, attn_out_bias=True, norm="layernorm", norm_eps=1e-5, tie_embeddings=True,
    pad_token_id=3, bos_token_id=1, eos_token_id=2,
)
BLOOM_SIZES = {  # released sizes (BigScience model cards): params, layers, d_model, heads
    "bloom-560m": (560e6, 24, 1024, 16),
    "bloom-7b1": (7.1e9, 30, 4096, 32),
    "bloom-176b": (176e9, 70, 14336, 112),
}
BLOOM_CONFIGS = {n: sized(BLOOM, n, n_layers=L, d_model=d, n_heads=h, d_ff=4 * d) for n, (_, L, d, h) in BLOOM_SIZES.items()}

ARCH = ("Causal decoder with ALiBi attention biases and a LayerNorm after the embeddings; trained on ROOTS "
        "(1.61TB, 46 natural and 13 programming languages).")

CARDS = (
    *(
        ModelCard(
            name=name, family="bloom", kind="decoder", params_published=params, year=2022, organisation="BigScience",
            open_weights=True, training_tokens=366e9, context_length=2048, source="minaee2024, zoo-lecture, naveed2023, fm-notes",
            aliases=("bloom",) if name == "bloom-176b" else (), config=BLOOM_CONFIGS[name], architecture=ARCH,
            notes="Minaee et al. 2024: 176B, 366B tokens. Data and weights are open (the LLM Zoo lecture notes). Smaller sizes from the release.",
        )
        for name, (params, *_) in BLOOM_SIZES.items()
    ),
    ModelCard(
        name="bloomz-176b", family="bloom", kind="decoder", params_published=176e9, year=2022,
        organisation="BigScience", open_weights=True, base_model="bloom-176b", context_length=2048, source="zoo-lecture",
        aliases=("bloomz",), config=sized(BLOOM_CONFIGS["bloom-176b"], "bloomz-176b"),
        architecture="BLOOM fine-tuned on the multilingual multitask prompt mixture xP3.",
    ),
)
