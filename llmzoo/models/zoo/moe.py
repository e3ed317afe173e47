"""Sparse mixture-of-experts models: Mixtral (config), GLaM, PanGu-Sigma, CPM-2 MoE (cards)."""

from __future__ import annotations

from llmzoo.models.zoo.card import ModelCard, sized
from llmzoo.models.zoo.mistral import MISTRAL

# Mixtral 8x7B (Jiang et al. 2024): Mistral 7B with every feed-forward replaced by 8 SwiGLU experts, top-2
# routing with renormalised weights; rope base 1e6 and full attention over 32k tokens.
MIXTRAL = sized(MISTRAL, "mixtral-8x7b", family="mixtral", n_experts=8, n_experts_per_token=2, rope_base=1e6,
                sliding_window=None)

CARDS = (
    ModelCard(
        name="mixtral-8x7b", family="mixtral", kind="decoder", params_published=46.7e9, year=2023,
        organisation="Mistral AI", open_weights=True, context_length=32768, source="minaee2024, zoo-lecture", aliases=("mixtral",),
        config=MIXTRAL,
        architecture="Sparse MoE decoder: 8 SwiGLU experts per layer, each token routed to 2 (12.9B active of "
                     "46.7B parameters); GQA as Mistral 7B.",
        notes="Minaee et al. 2024: 46.7B. Active count 12.9B from Jiang et al. 2024.",
    ),
    ModelCard(
        name="glam-1.2t", family="glam", kind="decoder", params_published=1.2e12, year=2021, organisation="Google",
        open_weights=False, training_tokens=1.6e12, source="minaee2024, zoo-lecture, naveed2023", aliases=("glam", "glam-64b-64e"),
        architecture="Decoder whose every other feed-forward is a 64-expert MoE with top-2 gating (64B/64E); "
                     "96.6B parameters (8%) active per token; 1/3 of GPT-3's training energy, half its inference "
                     "FLOPs, better 0/1/few-shot results on 29 tasks.",
        notes="Card only: ModelConfig's MoE applies to every layer, GLaM alternates dense and MoE layers.",
    ),
    ModelCard(
        name="pangu-sigma-1.085t", family="pangu", kind="decoder", params_published=1.085e12, year=2023,
        organisation="Huawei", open_weights=False, base_model="pangu-alpha-200b", source="naveed2023",
        aliases=("pangu-sigma", "pangu-σ"),
        architecture="PanGu-alpha's parameters extended to a trillion with Random Routed Experts: dense shared "
                     "lower layers, upper layers with domain experts chosen by random (not learned) routing, so "
                     "domain sub-models can be extracted.",
        notes="Card only. Count from Ren et al. 2023 (Naveed et al. 2023 say 'trillion scale').",
    ),
    ModelCard(
        name="cpm-2-moe-198b", family="cpm", kind="encoder-decoder", params_published=198e9, year=2021,
        organisation="Tsinghua University / BAAI", open_weights=True, base_model="cpm-2-11b", source="naveed2023",
        aliases=("cpm-2-moe",),
        architecture="CPM-2's 11B model replicated into experts to initialise a 198B MoE.",
        notes="Card only.",
    ),
)
