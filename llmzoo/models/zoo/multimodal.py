"""Image-text models the surveys discuss (the LLM Zoo lecture notes "multimodal", Minaee et al. 2024 KOSMOS). CLIP's
ViT-B/32 has a full two-tower config (llmzoo.models.clip_config); the others are cards only."""

from __future__ import annotations

from llmzoo.models.clip_config import CLIPConfig
from llmzoo.models.zoo.card import ModelCard

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
        aliases=("flamingo",),
        architecture="Visual language model: frozen vision encoder and frozen Chinchilla LM joined by trained "
                     "Perceiver resampler and gated cross-attention layers; generates text from interleaved "
                     "images and text.",
        notes="Size from Alayrac et al. 2022. Card only.",
    ),
    ModelCard(
        name="kosmos-1", family="kosmos", kind="other", params_published=1.6e9, year=2023, organisation="Microsoft",
        open_weights=False, source="minaee2024", aliases=("kosmos",),
        architecture="Multimodal LLM trained from scratch on interleaved image-text, image-caption pairs and text; "
                     "in-context learning, instruction following, OCR-free NLP on document images.",
        notes="Size from Huang et al. 2023. Card only.",
    ),
)
