"""KOSMOS-1-style interleaving (Huang et al. 2023, "Language Is Not All You Need", section 2.1): images
become embeddings in the decoder's input sequence, not a separate memory as in Flamingo.

    image -> vision tower -> Perceiver Resampler ("attentive pooling", 64 tokens) -> linear -> emb_dim

Each image occupies `n_latents` placeholder tokens (`image_token_id`) in input_ids (KOSMOS-1 brackets
them with <image> ... </image>, ordinary tokens here); their token embeddings are replaced by the image's,
in order, and the decoder runs on `inputs_embeds`. With no pixel_values the input is text and runs as
the plain decoder (a placeholder id is then an ordinary token). Nothing is frozen: KOSMOS-1 trains the
LM from scratch and the vision tower's last layer; freezing is the caller's choice (requires_grad_).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from llmzoo.config import ACTIVATIONS
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.models.decoder import DecoderLM
from llmzoo.models.outputs import ModelOutput
from llmzoo.models.vision import VisionTower
from llmzoo.nn.perceiver_resampler import PerceiverResampler


@dataclass(frozen=True)
class KosmosConfig:
    image_token_id: int
    n_latents: int = 64  # image embeddings per image (the paper's resampler output)
    resampler_depth: int = 2
    resampler_heads: int = 8
    resampler_head_dim: int = 64
    resampler_activation: str = "gelu"

    def __post_init__(self) -> None:
        for name in ("image_token_id", "n_latents", "resampler_depth", "resampler_heads", "resampler_head_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "image_token_id" else 1):
                raise ConfigError(f"KosmosConfig.{name} must be a {'non-negative' if name == 'image_token_id' else 'positive'} "
                                  f"integer, got {value!r}")
        if self.resampler_activation not in ACTIVATIONS:
            raise ConfigError(f"KosmosConfig.resampler_activation {self.resampler_activation!r} is not one of {ACTIVATIONS}")


class Kosmos(nn.Module):
    def __init__(self, decoder: DecoderLM, vision: VisionTower, config: KosmosConfig) -> None:
        super().__init__()
        if config.image_token_id >= decoder.config.vocab_size:
            raise ConfigError(f"KosmosConfig.image_token_id={config.image_token_id} is outside the decoder's "
                              f"vocab_size={decoder.config.vocab_size}; use a token id of its vocabulary")
        self.config, self.decoder, self.vision = config, decoder, vision
        dv = vision.config.d_model
        self.resampler = PerceiverResampler(dv, n_latents=config.n_latents, depth=config.resampler_depth,
                                            n_heads=config.resampler_heads, head_dim=config.resampler_head_dim,
                                            activation=config.resampler_activation, eps=vision.config.norm_eps)
        self.project = nn.Linear(dv, decoder.config.emb_dim, bias=False)  # into the token-embedding space

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, N, C, H, W) -> (B, N * n_latents, emb_dim)."""
        B, N = pixel_values.shape[:2]
        features, _ = self.vision(pixel_values.flatten(0, 1))  # (B * N, 1 + patches, Dv)
        return self.project(self.resampler(features)).reshape(B, N * self.config.n_latents, -1)

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """The decoder's input embeddings (B, T, emb_dim) with the placeholders holding the images'."""
        images = self.image_embeddings(pixel_values if pixel_values.dim() == 5 else pixel_values[:, None])
        placeholder = input_ids == self.config.image_token_id  # (B, T)
        counts = placeholder.sum(1)
        if bool((counts != images.shape[1]).any()):
            raise LlmzooError(f"input_ids hold {counts.tolist()} image placeholders (token {self.config.image_token_id}) "
                              f"per row but pixel_values give {images.shape[1]} image embeddings a row "
                              f"({self.config.n_latents} per image); put n_latents placeholders per image")
        rank = (placeholder.cumsum(1) - 1).clamp(min=0)  # which image embedding each placeholder takes
        picked = images.gather(1, rank[:, :, None].expand(-1, -1, images.shape[-1]))  # (B, T, emb_dim)
        tokens = self.decoder.embeddings.tokens(input_ids)
        return torch.where(placeholder[:, :, None], picked.to(tokens.dtype), tokens)

    def forward(self, input_ids: torch.Tensor, *, pixel_values: torch.Tensor | None = None, **decoder_kwargs) -> ModelOutput:
        """input_ids (B, T) with n_latents placeholders per image; pixel_values (B, N, C, H, W) or (B, C, H, W).
        Other arguments (attention_mask, cache, targets, ...) go to the decoder."""
        if pixel_values is None:
            return self.decoder(input_ids, **decoder_kwargs)
        return self.decoder(inputs_embeds=self.embed(input_ids, pixel_values), **decoder_kwargs)
