"""Mistral AI's dense models (Mistral 7B) and the models built on it (Zephyr). Mixtral is in moe.py."""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized

# Mistral 7B (Jiang et al. 2023; Minaee et al. 2024): LLaMA-style with grouped-query attention (8 KV heads) and
# sliding-window attention (window 4096 in every layer) for long sequences at bounded cost.
MISTRAL = ModelConfig(
    name="mistral-7b", family="mistral", arch="decoder", vocab_size=32000, d_model=4096, n_layers=32, n_heads=32,
    n_kv_heads=8, d_ff=14336, max_seq_len=32768, position="rope", rope_base=10000.0, sliding_window=4096,
    activation="silu", mlp_gated=True, norm="rmsnorm", norm_eps=1e-5, tie_embeddings=False,
    bos_token_id=1, eos_token_id=2,
)
# v0.3 (the LLM Zoo lecture notes mention "Mistral (version 0.3)"): 32,768-token vocabulary, rope base 1e6, no window.
MISTRAL_V03 = sized(MISTRAL, "mistral-7b-v0.3", vocab_size=32768, rope_base=1e6, sliding_window=None)

CARDS = (
    ModelCard(
        name="mistral-7b", family="mistral", kind="decoder", params_published=7.3e9, year=2023,
        organisation="Mistral AI", open_weights=True, context_length=8192, source="minaee2024, zoo-lecture",
        aliases=("mistral",), config=MISTRAL,
        architecture="LLaMA-style decoder with grouped-query attention (faster inference) and sliding-window "
                     "attention (window 4096) for long sequences at lower cost.",
        notes="Minaee et al. 2024: 7.3B; beats LLaMA-2-13B on all benchmarks. The released checkpoint counts 7.24B.",
    ),
    ModelCard(
        name="mistral-7b-v0.3", family="mistral", kind="decoder", params_published=7.25e9, year=2024,
        organisation="Mistral AI", open_weights=True, context_length=32768, source="zoo-lecture", config=MISTRAL_V03,
        architecture="Mistral 7B with a 32,768-token vocabulary, rope base 1e6 and full (not windowed) attention.",
        notes="The LLM Zoo lecture notes name version 0.3; the count is the checkpoint's (7.25B), not in the surveys.",
    ),
    ModelCard(
        name="zephyr-7b", family="mistral", kind="decoder", params_published=7.24e9, year=2023,
        organisation="Hugging Face", open_weights=True, base_model="mistral-7b", training_tokens=800e9,
        context_length=8192, source="minaee2024", aliases=("zephyr", "zephyr-7b-beta"), config=sized(MISTRAL, "zephyr-7b"),
        architecture="Mistral-7B distilled into a chat model: distilled SFT on UltraChat, then distilled DPO on "
                     "UltraFeedback preferences.",
        notes="Minaee et al. 2024 lists 7.24B parameters and '800B' tokens (the latter is not in the Zephyr paper).",
    ),
)
