"""Flamingo (Alayrac et al. 2022): a frozen decoder LM reads images through new, trained layers.

    images -> frozen vision tower -> Perceiver Resampler -> n_latents visual tokens per image
    text   -> frozen decoder, with a GATED XATTN-DENSE layer before every k-th block

The decoder is a ModelConfig like any other: the LM's, with 'gated' entries in its per-layer
cross_attentions spec (`FlamingoConfig.decoder_config`), so `build_model` builds it and each gated
layer is part of its block (`decoder.layers.{i}.gated_cross_attn`, run before the block's attention,
as IDEFICS interleaves them). Given a plain LM, Flamingo adds those sub-layers to its blocks in place
(no rebuild of the frozen LM; its parameter names are unchanged). Only the resampler and the gated
layers train (`trainable_parameters()`); the decoder and the vision tower are frozen. The visual tokens
reach the gated blocks as their `cross_states`, handed in by forward pre-hooks only inside
`Flamingo.forward`, as RETRO hands its neighbours: `model.decoder(ids)` alone is the plain frozen LM.

Where images are: `media_locations` (B, T) bool marks the text position of each image (the `<image>`
token; derived from `config.image_token_id` when not passed). Image j of a row is the j-th marked
position; pixel_values (B, N, C, H, W) holds each row's images in that order (rows with fewer pad).
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.models.decoder import DecoderLM
from llmzoo.models.flamingo_config import FlamingoConfig
from llmzoo.models.outputs import ModelOutput
from llmzoo.models.vision import VisionTower
from llmzoo.nn.gated_cross_attention import GatedCrossAttentionDense, VisualMemory, media_masks
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
        """decoder: the LM, plain or built from `config.decoder_config(lm_config, vision.config.d_model)`."""
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
        dv = vision.config.d_model
        self.config, self.vision = config, vision.requires_grad_(False)
        self.decoder = _with_gated_layers(decoder, config.decoder_config(lm, dv)).requires_grad_(False)
        self.resampler = PerceiverResampler(
            dv, n_latents=config.n_latents, depth=config.resampler_depth, n_heads=config.resampler_heads,
            head_dim=config.resampler_head_dim, activation=config.resampler_activation, qk_norm=config.resampler_qk_norm,
            eps=vision.config.norm_eps)
        self._memory: VisualMemory | None = None  # during forward only
        for i, layer in self.gated.items():
            layer.requires_grad_(True)
            self.decoder.layers[int(i)].register_forward_pre_hook(self._pass_memory, with_kwargs=True)
        self.register_load_state_dict_pre_hook(_rename_old_gated_keys)

    @property
    def gated(self) -> dict[str, GatedCrossAttentionDense]:
        """The GATED XATTN-DENSE layers, by the index of the decoder block each runs before."""
        return {str(i): block.gated_cross_attn for i, block in enumerate(self.decoder.layers)
                if hasattr(block, "gated_cross_attn")}

    def _pass_memory(self, block, args, kwargs):
        if self._memory is None:  # the decoder called on its own: the frozen LM
            return None
        return args, {**kwargs, "cross_states": self._memory}

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
        self._memory = VisualMemory(visual, *media_masks(image_index, n_images, self.config.n_latents)) \
            if visual is not None else VisualMemory()  # text alone: the gated FFWs still run
        try:
            return self.decoder(input_ids, cache=cache, **decoder_kwargs)
        finally:
            self._memory = None

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


def _with_gated_layers(decoder: DecoderLM, target: ModelConfig) -> DecoderLM:
    """The decoder with target's gated sub-layers: the modules build_model(target) makes, added to a plain
    LM's blocks on its device and dtype (the frozen LM is not rebuilt: a 70B LM would be held twice)."""
    if decoder.config == target:
        return decoder
    ref = next(decoder.parameters())
    dtype = ref.dtype if ref.is_floating_point() else None  # a quantized LM's int weights: keep the new layers float
    for i, block in enumerate(decoder.layers):
        if target.cross_kind(i) == "gated":
            block.gated_cross_attn = GatedCrossAttentionDense.from_config(target).to(device=ref.device, dtype=dtype)
    decoder.config = target
    return decoder


def _rename_old_gated_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Flamingo checkpoints saved while the gated layers were a ModuleDict beside the decoder, run by hooks,
    name them `gated.{i}.*`; they are now part of block i: `decoder.layers.{i}.gated_cross_attn.*`."""
    old = prefix + "gated."
    for key in [k for k in state_dict if k.startswith(old)]:
        i, rest = key[len(old):].split(".", 1)
        state_dict[f"{prefix}decoder.layers.{i}.gated_cross_attn.{rest}"] = state_dict.pop(key)
