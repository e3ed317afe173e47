"""Sparse mixture-of-experts models: Mixtral, GLaM, Switch Transformers (configs), PanGu-Sigma, CPM-2 MoE (cards)."""

from __future__ import annotations

from llmzoo.config import ModelConfig
from llmzoo.models.zoo.card import ModelCard, sized
from llmzoo.models.zoo.encoder_decoders import T5
from llmzoo.models.zoo.mistral import MISTRAL
from llmzoo.models.zoo.others import PANGU_ALPHA

# Mixtral 8x7B (Jiang et al. 2024): Mistral 7B with every feed-forward replaced by 8 SwiGLU experts, top-2
# routing with renormalised weights; rope base 1e6 and full attention over 32k tokens.
MIXTRAL = sized(MISTRAL, "mixtral-8x7b", family="mixtral", n_experts=8, n_experts_per_token=2, rope_base=1e6,
                sliding_window=None)

# GLaM 64B/64E (Du et al. 2022, Table 4; the layout of Google's own GLaM configs in praxis/paxml): 64 layers of
# d_model 8192 with 128 heads of 128, a MoE of 64 experts in every other layer (the first of each pair), top-2
# gating with the two weights renormalised (GShard); GEGLU dense feed-forwards, plain GELU experts, both 32768
# wide; RMSNorm, no biases, unscaled attention scores with a relative position bias, a tied 256K vocabulary.
GLAM = ModelConfig(
    name="glam-1.2t", family="glam", arch="decoder", vocab_size=256000, d_model=8192, n_layers=64, n_heads=128,
    head_dim=128, d_ff=32768, max_seq_len=1024, position="relative_bias", attn_scale=1.0, activation="gelu",
    mlp_gated=True, norm="rmsnorm", tie_embeddings=True, ffns=("moe", "dense"), n_experts=64, n_experts_per_token=2,
    moe_renormalize=True, moe_expert_gated=False, moe_aux_loss_coef=0.01,
)

# Switch Transformers (Fedus et al. 2021): T5 (v1.0 layout: ReLU MLPs, tied rescaled head) whose feed-forward is a
# top-1 routed MoE; the released checkpoints use a fixed expert capacity of 64 tokens per sequence, jitter 0.01,
# router z-loss and load-balancing weights 0.001 (transformers' SwitchTransformersConfig defaults).
SWITCH = sized(T5, "switch-base-8", family="switch", ffns=("dense", "moe"), n_experts=8, n_experts_per_token=1,
               moe_kind="switch", moe_renormalize=False, moe_expert_capacity=64, moe_jitter=0.01,
               moe_aux_loss_coef=0.001, moe_z_loss_coef=0.001)
# Switch-C (Table 9): 15 + 15 layers of d_model 2080, 32 heads of 64, 2048 ReLU experts of 6144 in every layer.
SWITCH_C = sized(SWITCH, "switch-c-2048", d_model=2080, n_layers=15, n_heads=32, head_dim=64, d_ff=6144,
                 ffns=("moe",), n_experts=2048)

# PanGu-Sigma (Ren et al. 2023): PanGu-alpha 13B's shape (d_model 5120, 40 heads of 128, FFN 20480,
# learned positions over 1024 tokens, FastGeLU, biases), which it inherits its weights from, in 40 layers: the
# bottom 32 dense and shared by all domains, the top 8 Random Routed Experts layers of 640 experts each, 40 domain
# groups of 16 (llmzoo.nn.rre). That is 8 x 640 experts of 210M = 1.074T of the 1.085T; a domain's sub-model
# (shared layers + its 16 experts per RRE layer) has 38B, the size the paper's Chinese sub-model is given.
PANGU_SIGMA = sized(PANGU_ALPHA, "pangu-sigma-1.085t", d_model=5120, n_layers=40, n_heads=40, d_ff=20480,
                    top_query_layer=False, ffns=("dense",) * 32 + ("rre",) * 8, n_experts=640, rre_domains=40)

SWITCH_ARCH = ("T5 encoder-decoder whose feed-forward is a Switch MoE (top-1 routing, each token to one expert scaled "
               "by its router probability; per-sequence expert capacity, overflow tokens skip the layer through the "
               "residual; load-balancing loss and router z-loss)")

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
        config=GLAM,
        architecture="Decoder whose every other feed-forward is a 64-expert MoE with top-2 gating (64B/64E); "
                     "96.6B parameters (8%) active per token; 1/3 of GPT-3's training energy, half its inference "
                     "FLOPs, better 0/1/few-shot results on 29 tasks.",
        notes="Shape from Du et al. 2022 Table 4 (64 layers, d_model 8192, d_ff 32768, 128 heads of 128, 64 experts); "
              "the config counts 1.162T parameters (published rounded to 1.2T) and 96.6B active per token, as "
              "published. GLU only in the dense feed-forwards (the paper, sec. 4) and experts without one are what "
              "makes both counts come out. No capacity limit set (the paper gives none).",
        approximation="GLaM gives each layer its own relative position bias table (Transformer-XL style); this "
                      "config shares one T5-style bucketed table (32 x 128 of 1.16T parameters).",
    ),
    ModelCard(
        name="switch-base-8", family="switch", kind="encoder-decoder", params_published=None, year=2021,
        organisation="Google", open_weights=True, training_tokens=None, context_length=512, source="fedus2021",
        aliases=("switch", "switch-transformer"), config=SWITCH,
        architecture=SWITCH_ARCH + "; T5-Base with 8 experts in every other layer of both stacks.",
        notes="The released checkpoint (transformers' google/switch-base-8) publishes no count; the config's equals "
              "transformers' SwitchTransformersForConditionalGeneration built from that release's shape (tested).",
    ),
    ModelCard(
        name="switch-base-128", family="switch", kind="encoder-decoder", params_published=7.4e9, year=2021,
        organisation="Google", open_weights=True, context_length=512, source="fedus2021",
        config=sized(SWITCH, "switch-base-128", n_experts=128),
        architecture=SWITCH_ARCH + "; T5-Base with 128 experts in every other layer (7.4B parameters, T5-Base's "
                                   "FLOPs per token).",
        notes="Fedus et al. 2021 Table 9: Switch-Base 7B (expert frequency 1/2, capacity factor 1.0); the released "
              "checkpoint's ReLU 3072-wide experts give the paper's 7.4B as its GEGLU 2048-wide ones do.",
    ),
    ModelCard(
        name="switch-c-2048", family="switch", kind="encoder-decoder", params_published=1571e9, year=2021,
        organisation="Google", open_weights=True, context_length=512, source="fedus2021", aliases=("switch-c",),
        config=SWITCH_C,
        architecture=SWITCH_ARCH + "; 2048 experts in every layer of both stacks.",
        notes="Fedus et al. 2021 Table 9: Switch-C 1571B, d_model 2080, d_ff 6144, 32 heads of 64, 15 layers, "
              "2048 experts, expert frequency 1.",
    ),
    ModelCard(
        name="pangu-sigma-1.085t", family="pangu", kind="decoder", params_published=1.085e12, year=2023,
        organisation="Huawei", open_weights=False, base_model="pangu-alpha-13b", source="naveed2023, ren2023",
        aliases=("pangu-sigma", "pangu-σ"), training_tokens=329e9, context_length=1024, config=PANGU_SIGMA,
        architecture="PanGu-alpha's parameters extended to a trillion with Random Routed Experts: dense shared "
                     "lower layers, upper layers with domain experts chosen by random (not learned) routing, so "
                     "domain sub-models can be extracted.",
        notes="Ren et al. 2023: 1.085T parameters, 329B tokens, weights inherited from PanGu-alpha 13B (its "
              "width, not the 200B's). 40 layers of PanGu-alpha 13B's width: 32 dense shared, 8 RRE layers "
              "of 640 experts in 40 domain groups of 16; each token uses one expert of its domain's group "
              "(model(ids, domain_ids=...)); llmzoo.nn.rre.extract_domain cuts out a domain's sub-model.",
        approximation="The vocabulary is PanGu-alpha's 40k table, not checked against PanGu-Sigma's own tokenizer "
                      "(any vocabulary under 200k moves the count by under 0.1%); PanGu-alpha's top query layer "
                      "is left out (0.4B, 0.04% of the count).",
    ),
    ModelCard(
        name="cpm-2-moe-198b", family="cpm", kind="encoder-decoder", params_published=198e9, year=2021,
        organisation="Tsinghua University / BAAI", open_weights=True, base_model="cpm-2-11b", source="naveed2023",
        aliases=("cpm-2-moe",),
        architecture="CPM-2's 11B model replicated into experts to initialise a 198B MoE.",
        notes="Card only.",
    ),
)
