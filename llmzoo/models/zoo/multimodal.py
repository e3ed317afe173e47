"""Image-text models the surveys discuss (the LLM Zoo lecture notes "multimodal", Minaee et al. 2024 KOSMOS). CLIP's
ViT-B/32 has a full two-tower config (llmzoo.models.clip_config), Flamingo-80B a full-size composite
(llmzoo.models.flamingo_model_config); the others are cards only."""

from __future__ import annotations

from llmzoo.models.clip_config import CLIPConfig
from llmzoo.models.flamingo_config import FlamingoConfig
from llmzoo.models.flamingo_model_config import FlamingoModelConfig
from llmzoo.models.zoo.card import ModelCard
from llmzoo.models.zoo.deepmind import CHINCHILLA

# Flamingo-80B (Alayrac et al. 2022, section 2 and appendix B.1): the frozen Chinchilla 70B, a GATED
# XATTN-DENSE layer before every 7th of its 80 blocks (12 layers, 64 heads of 128, 4x FFW), a 6-layer
# Perceiver Resampler (16 heads of 128, 64 latents) of width 1536 over the frozen NFNet-F6's features.
FLAMINGO_80B = FlamingoModelConfig(
    name="flamingo-80b", lm=CHINCHILLA,
    flamingo=FlamingoConfig(cross_attention_interval=7, n_latents=64, resampler_depth=6, resampler_heads=16,
                            resampler_head_dim=128),
    vision_dim=1536, vision_params=435_000_000, vision_name="NFNet-F6 (contrastively pretrained)",
)

CARDS = (
    ModelCard(
        name="clip", family="clip", kind="other", params_published=None, year=2021, organisation="OpenAI",
        open_weights=True, source="zoo-lecture",
        architecture="Image and text encoders trained with a contrastive objective into one embedding space; "
                     "zero-shot classification by cosine similarity between an image and encoded class labels.",
        notes="Several sizes (ResNet and ViT image towers); none singled out by the surveys. The smallest ViT "
              "one runs in llmzoo: clip-vit-base-patch32.",
    ),
    ModelCard(
        name="clip-vit-base-patch32", family="clip", kind="other", params_published=151.3e6, year=2021,
        organisation="OpenAI", open_weights=True, base_model=None, source="zoo-lecture", context_length=77,
        aliases=("clip-vit-b-32",),
        architecture="CLIP with a ViT-B/32 image tower (224px images, 32px patches, 12 layers of width 768) "
                     "and a 12-layer, width-512 causal text transformer, both projected to 512 dimensions.",
        notes="Size: the openai/clip-vit-base-patch32 checkpoint (151,277,313 parameters). Loads from and saves "
              "to transformers' CLIPModel.",
        composite=CLIPConfig(name="clip-vit-base-patch32"),
    ),
    ModelCard(
        name="openclip", family="clip", kind="other", params_published=None, year=2022, organisation="LAION",
        open_weights=True, base_model="clip", source="zoo-lecture", aliases=("open-clip",),
        architecture="Open-source reimplementation of CLIP trained on LAION-5B (~6B image-text pairs).",
        notes="The LLM Zoo lecture notes list it among LAION's fully open projects. Card only.",
    ),
    ModelCard(
        name="flamingo-80b", family="flamingo", kind="other", params_published=80e9, year=2022,
        organisation="DeepMind", open_weights=False, base_model="chinchilla-70b", source="zoo-lecture",
        aliases=("flamingo",), composite=FLAMINGO_80B,
        architecture="Visual language model: frozen vision encoder and frozen Chinchilla LM joined by trained "
                     "Perceiver resampler and gated cross-attention layers; generates text from interleaved "
                     "images and text.",
        notes="Size from Alayrac et al. 2022. Built by llmzoo.models.flamingo (the LM with its gated layers by "
              "build_model, the resampler by llmzoo.nn.perceiver_resampler); counted 79.0B against the published "
              "80B, a rounded name. Confirmed against the paper's Flamingo-3B column as the flamingo-mini project "
              "quotes it: an NFNet-F6 of 435M parameters with 1536-wide features and a resampler of 6 layers, 16 "
              "heads of 128, 64 latents, 194M parameters (189M as built here; the 5M difference is not explained "
              "in the sources read). From the paper but not confirmed against a stored copy: that the 80B shares "
              "that encoder and resampler, and its gated layers before every 7th block (12 layers) with 64 heads "
              "of 128 and a 4x FFW over the frozen Chinchilla 70B; no published breakdown of the 80B into its "
              "parts could be confirmed.",
        approximation="The NFNet-F6 vision encoder is not built: it is counted as its published 435M parameters "
                      "(a VisionTower ViT stands in to run the model). The gated FFWs and the resampler use "
                      "GELU (the LM's and the resampler's default) where the paper uses squared ReLU (the same "
                      "parameters); the resampler's time embeddings for video frames are left out.",
    ),
    ModelCard(
        name="kosmos-1", family="kosmos", kind="other", params_published=1.6e9, year=2023, organisation="Microsoft",
        open_weights=False, source="minaee2024", aliases=("kosmos",),
        architecture="Multimodal LLM trained from scratch on interleaved image-text, image-caption pairs and text; "
                     "in-context learning, instruction following, OCR-free NLP on document images.",
        notes="Size from Huang et al. 2023. Card only.",
    ),
)
