"""The ViT image tower (Dosovitskiy et al. 2021) as CLIP uses it (Radford et al. 2021).

An image is cut into non-overlapping patches, each linearly embedded (a strided convolution without
bias), a learned class token is prepended, learned positions are added, and CLIP adds one LayerNorm
before the blocks (`pre_layrnorm` in OpenAI's and transformers' code), a detail of CLIP, not of the
original ViT. The blocks are llmzoo's pre-LN Block. The image's representation is the class token's
final state through one more LayerNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.models.clip_config import VisionConfig
from llmzoo.nn.block import Block
from llmzoo.nn.norm import make_norm


class VisionTower(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        blocks = config.transformer
        d = config.d_model
        self.patch_embedding = nn.Conv2d(config.n_channels, d, kernel_size=config.patch_size,
                                         stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(d))
        self.positions = nn.Embedding(config.n_patches + 1, d)
        self.pre_norm = make_norm(blocks)
        self.layers = nn.ModuleList(Block(blocks, i) for i in range(config.n_layers))
        self.post_norm = make_norm(blocks)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values (B, C, H, W) -> (last hidden states (B, 1 + patches, D), pooled (B, D))."""
        c = self.config
        want = (c.n_channels, c.image_size, c.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != want:
            raise LlmzooError(f"pixel_values has shape {tuple(pixel_values.shape)}, expected (batch, {want[0]}, "
                              f"{want[1]}, {want[2]}); resize the images to this model's image_size")
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))  # (B, D, H/p, W/p)
        patches = patches.flatten(2).transpose(1, 2)  # (B, n_patches, D), row-major over the grid
        cls = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        h = torch.cat([cls, patches], dim=1) + self.positions.weight  # (B, 1 + n_patches, D)
        h = self.pre_norm(h)
        for layer in self.layers:  # every patch sees every other: no mask
            h, _ = layer(h)
        return h, self.post_norm(h[:, 0])
