"""Flamingo (Alayrac et al. 2022): a frozen decoder LM reads images through new, trained layers.

    images -> frozen vision tower -> Perceiver Resampler -> n_latents visual tokens per image
    text   -> frozen decoder, with a GATED XATTN-DENSE layer before every k-th block

Only the resampler and the gated layers train (`trainable_parameters()`); the decoder and the vision
tower are frozen (requires_grad False). The gated layers run as forward pre-hooks on the decoder's
blocks, active only inside `Flamingo.forward`: the decoder keeps its structure and parameter names
(an LM checkpoint loads into it unchanged), and `model.decoder(ids)` is still the plain frozen LM.
(open_flamingo wraps the blocks instead; IDEFICS interleaves the layers in its own decoder.)

Where images are: `media_locations` (B, T) bool marks the text position of each image (the `<image>`
token; derived from `config.image_token_id` when not passed). Image j of a row is the j-th marked
position; pixel_values (B, N, C, H, W) holds each row's images in that order (rows with fewer pad).
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.models.decoder import DecoderLM
from llmzoo.models.flamingo_config import FlamingoConfig
from llmzoo.models.outputs import ModelOutput
from llmzoo.models.vision import VisionTower
from llmzoo.nn.gated_cross_attention import GatedCrossAttentionDense, media_masks
from llmzoo.nn.perceiver_resampler import PerceiverResampler


class MediaState:
    """What cached decoding keeps: the visual tokens and each slot's image index (the count of images
    at or before it), so later tokens know their most recent image without the earlier input_ids."""

    def __init__(self, image_index: torch.Tensor, visual: torch.Tensor | None = None) -> None:
        self.image_index, self.visual = image_index, visual  # (B, max_len) long, (B, S, Dv)

    def reorder(self, index: torch.Tensor) -> "MediaState":
        visual = self.visual.index_select(0, index) if self.visual is not None else None
        return MediaState(self.image_index.index_select(0, index), visual)

    def rows(self, start: int, end: int) -> "MediaState":
        return MediaState(self.image_index[start:end], self.visual[start:end] if self.visual is not None else None)

    def nbytes(self) -> int:
        tensors = [self.image_index] + ([self.visual] if self.visual is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)


class Flamingo(nn.Module):
    def __init__(self, decoder: DecoderLM, vision: VisionTower | None, config: FlamingoConfig) -> None:
        super().__init__()
        if vision is None:
            raise ConfigError("Flamingo: gated cross-attention needs visual input but vision is None; "
                              "pass a VisionTower (llmzoo.models.vision)")
        if not isinstance(decoder, DecoderLM):
            raise ConfigError(f"Flamingo: the language model must be a decoder (DecoderLM), got {type(decoder).__name__}")
        lm = decoder.config
        if config.cross_attention_interval > lm.n_layers:
            raise ConfigError(f"FlamingoConfig.cross_attention_interval={config.cross_attention_interval} exceeds the "
                              f"decoder's n_layers={lm.n_layers}; use 1..{lm.n_layers}")
        if lm.share_layers:
            raise ConfigError(f"Flamingo: decoder {lm.name} shares one block across layers (share_layers=True); "
                              "gated layers need a block per layer")
        self.config, self.decoder, self.vision = config, decoder.requires_grad_(False), vision.requires_grad_(False)
        dv = vision.config.d_model
        self.resampler = PerceiverResampler(
            dv, n_latents=config.n_latents, depth=config.resampler_depth, n_heads=config.resampler_heads,
            head_dim=config.resampler_head_dim, activation=config.resampler_activation, qk_norm=config.resampler_qk_norm,
            eps=vision.config.norm_eps)
        self.gated = nn.ModuleDict({
            str(i): GatedCrossAttentionDense(lm, dv, n_heads=config.xattn_heads, d_ff=config.xattn_d_ff,
                                             gate=config.gate, qk_norm=config.xattn_qk_norm)
            for i in range(lm.n_layers) if config.has_cross_attention(i)})
        self._media: tuple | None = None  # (visual, allowed, has_media) during forward only
        for i, layer in self.gated.items():
            decoder.layers[int(i)].register_forward_pre_hook(self._hook(layer), with_kwargs=True)

    def _hook(self, layer: GatedCrossAttentionDense):
        def run_gated_layer(block, args, kwargs):
            if self._media is None:  # the decoder called on its own: the frozen LM
                return None
            return (layer(args[0], *self._media), *args[1:]), kwargs
        return run_gated_layer

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The new parts (resampler, gated layers): what an optimizer should get."""
        return [p for p in self.parameters() if p.requires_grad]

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, N, C, H, W) -> visual tokens (B, N * n_latents, Dv)."""
        B, N = pixel_values.shape[:2]
        features, _ = self.vision(pixel_values.flatten(0, 1))  # (B * N, 1 + patches, Dv): every patch state
        return self.resampler(features).reshape(B, N * self.config.n_latents, -1)

    def forward(self, input_ids: torch.Tensor | None = None, *, pixel_values: torch.Tensor | None = None,
                media_locations: torch.Tensor | None = None, cache=None, **decoder_kwargs) -> ModelOutput:
        """input_ids (B, T); pixel_values (B, N, C, H, W) or (B, C, H, W) for one image a row; media_locations
        (B, T) bool. Other arguments (attention_mask, targets, logits_to_keep, ...) go to the decoder.
        With a cache, pass the images with the prompt; later steps reuse them."""
        if getattr(cache, "static", False):
            raise LlmzooError("Flamingo decodes with a dynamic Cache, not a StaticCache")
        ref = input_ids if input_ids is not None else decoder_kwargs.get("inputs_embeds")
        if ref is None:
            raise LlmzooError("Flamingo needs input_ids or inputs_embeds")
        B, T = ref.shape[:2]
        if media_locations is None:
            media_locations = (input_ids == self.config.image_token_id) if (
                self.config.image_token_id is not None and input_ids is not None) else torch.zeros(B, T, dtype=torch.bool)
        image_index = media_locations.to(device=ref.device, dtype=torch.long).cumsum(1)  # (B, T): 1-based, 0 = none
        visual = self.encode_images(pixel_values if pixel_values.dim() == 5 else pixel_values[:, None]) \
            if pixel_values is not None else None
        if cache is not None:
            image_index, visual = self._cached_media(cache, image_index, visual, T)
        n_images = visual.shape[1] // self.config.n_latents if visual is not None else 0
        if cache is None or pixel_values is not None:  # check the user's inputs once, not every decode step
            if bool((image_index > n_images).any()):
                raise LlmzooError(f"media_locations mark up to {int(image_index.max())} images in a row but "
                                  f"pixel_values holds {n_images}; pass one image per <image> position")
        self._media = (visual, *media_masks(image_index, n_images, self.config.n_latents)) if visual is not None else (None,)
        try:
            return self.decoder(input_ids, cache=cache, **decoder_kwargs)
        finally:
            self._media = None

    def _cached_media(self, cache, image_index: torch.Tensor, visual, T: int):
        """Continue the image count from the cached slots, append new images, remember both."""
        state = cache.state(("flamingo", "media"), lambda b, n, dtype, device: MediaState(
            torch.zeros(b, n, dtype=torch.long, device=device)))
        past = cache.seq_length
        if past:
            image_index = image_index + state.image_index[:, past - 1 : past]
        state.image_index[:, past : past + T] = image_index
        if visual is not None:
            state.visual = visual if state.visual is None else torch.cat([state.visual, visual], dim=1)
        return image_index, state.visual
