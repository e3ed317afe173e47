"""CLIPConfig: the composite config of a two-tower model (Radford et al. 2021, "Learning Transferable
Visual Models From Natural Language Supervision").

One ModelConfig describes one transformer stack; CLIP has two (a causal text transformer and a ViT)
joined by two projections and a learned temperature, so its config holds one config per tower plus
the fields that belong to neither. Both towers are the same pre-LN Block llmzoo's stacks use, so
each tower's transformer is a plain ModelConfig; the vision tower adds what a ModelConfig has no
words for (image size, patch size, channels) in a VisionConfig.

Importing this module never imports torch (the zoo catalog lists configs without it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from llmzoo.config import ACTIVATIONS, ModelConfig
from llmzoo.errors import ConfigError

# What CLIP's towers are, in ModelConfig fields: GPT-2-style pre-LN blocks with biases everywhere,
# a plain (ungated) MLP and learned absolute positions (Radford et al. 2021, section 2.4; OpenAI's
# clip/model.py). A text config that differs here would describe a model no CLIP checkpoint holds.
TOWER_FIELDS: dict[str, Any] = dict(
    norm="layernorm", norm_bias=True, norm_placement="pre", parallel_residual=False, mlp_gated=False,
    mlp_bias=True, qkv_bias=True, attn_out_bias=True, n_experts=0, position="learned", position_offset=0,
    embed_dim=None, embed_scale=None, embed_norm=False, type_vocab_size=0, head_dim=None, n_kv_heads=None,
    sliding_window=None, layer_pattern=None, attn_scale=None, attn_logit_softcap=None, share_layers=False,
    attention_type="standard", final_norm=True, positions_skip_padding=False, position_2d=False,
)


def clip_text_config(*, vocab_size: int = 49408, d_model: int = 512, n_layers: int = 12, n_heads: int = 8,
                     d_ff: int = 2048, max_seq_len: int = 77, activation: str = "quick_gelu",
                     norm_eps: float = 1e-5, attn_dropout: float = 0.0, pad_token_id: int | None = 1,
                     bos_token_id: int | None = 49406, eos_token_id: int | None = 49407) -> ModelConfig:
    """The text tower's ModelConfig (defaults: openai/clip-vit-base-patch32's text transformer)."""
    return ModelConfig(
        name="clip-text", family="clip", arch="decoder", head="none", vocab_size=vocab_size, d_model=d_model,
        n_layers=n_layers, n_heads=n_heads, d_ff=d_ff, max_seq_len=max_seq_len, activation=activation,
        norm_eps=norm_eps, attn_dropout=attn_dropout, tie_embeddings=False, pad_token_id=pad_token_id,
        bos_token_id=bos_token_id, eos_token_id=eos_token_id,
        **TOWER_FIELDS,
    )


@dataclass(frozen=True)
class VisionConfig:
    """The image tower: a ViT (Dosovitskiy et al. 2021) over non-overlapping patch_size^2 patches.
    Defaults: openai/clip-vit-base-patch32's ViT-B/32."""

    image_size: int = 224
    patch_size: int = 32
    n_channels: int = 3
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    activation: str = "quick_gelu"
    norm_eps: float = 1e-5
    attn_dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "n_channels", "d_model", "n_layers", "n_heads", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"CLIP vision config: {name} must be a positive integer, got {value!r}")
        if self.image_size % self.patch_size:
            raise ConfigError(f"CLIP vision config: image_size={self.image_size} is not a multiple of "
                              f"patch_size={self.patch_size}; the patches must tile the image")
        if self.d_model % self.n_heads:
            raise ConfigError(f"CLIP vision config: d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"CLIP vision config: activation {self.activation!r} is not one of {ACTIVATIONS}")

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def transformer(self) -> ModelConfig:
        """The ViT's blocks as a ModelConfig: the class token plus one position per patch."""
        return ModelConfig(
            name="clip-vision", family="clip", arch="encoder", head="none", vocab_size=1, d_model=self.d_model,
            n_layers=self.n_layers, n_heads=self.n_heads, d_ff=self.d_ff, max_seq_len=self.n_patches + 1,
            activation=self.activation, norm_eps=self.norm_eps, attn_dropout=self.attn_dropout,
            tie_embeddings=False, **TOWER_FIELDS,
        )


@dataclass(frozen=True)
class CLIPConfig:
    """text: the text tower's ModelConfig (make one with clip_text_config); vision: a VisionConfig;
    projection_dim: the shared embedding space; logit_scale_init: log of the initial temperature's
    inverse (the paper's log(1/0.07) = 2.6592)."""

    name: str = "clip"
    text: ModelConfig = field(default_factory=clip_text_config)
    vision: VisionConfig = field(default_factory=VisionConfig)
    projection_dim: int = 512
    logit_scale_init: float = 2.6592
    family: str = "clip"

    # Read by the machinery shared with single-stack models (llmzoo.models.build.build_model,
    # llmzoo.convert.hf.zoo_to_hf, llmzoo.api): which builder, and no tied LM head or GLM positions.
    arch: ClassVar[str] = "clip"
    tie_embeddings: ClassVar[bool] = False
    position_2d: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if isinstance(self.text, dict):
            object.__setattr__(self, "text", ModelConfig.from_dict(self.text))
        if isinstance(self.vision, dict):
            object.__setattr__(self, "vision", vision_from_dict(self.vision))
        if not isinstance(self.text, ModelConfig):
            raise ConfigError(f"{self.name}: text must be a ModelConfig (see clip_text_config), "
                              f"got {type(self.text).__name__}")
        if not isinstance(self.vision, VisionConfig):
            raise ConfigError(f"{self.name}: vision must be a VisionConfig, got {type(self.vision).__name__}")
        bad = [f"{k}={getattr(self.text, k)!r} (CLIP needs {v!r})" for k, v in TOWER_FIELDS.items()
               if getattr(self.text, k) != v]
        if bad:
            raise ConfigError(f"{self.name}: the text tower is not a CLIP text transformer: {'; '.join(bad)}")
        if self.text.eos_token_id is None:
            raise ConfigError(f"{self.name}: the text tower needs eos_token_id (its pooled output is the EOS token's state)")
        if not isinstance(self.projection_dim, int) or isinstance(self.projection_dim, bool) or self.projection_dim <= 0:
            raise ConfigError(f"{self.name}: projection_dim must be a positive integer, got {self.projection_dim!r}")
        if not isinstance(self.logit_scale_init, (int, float)) or isinstance(self.logit_scale_init, bool):
            raise ConfigError(f"{self.name}: logit_scale_init must be a number, got {self.logit_scale_init!r}")

    def replace(self, **changes: Any) -> "CLIPConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "arch": self.arch, "text": self.text.to_dict(),
                "vision": dataclasses.asdict(self.vision), "projection_dim": self.projection_dim,
                "logit_scale_init": self.logit_scale_init}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CLIPConfig":
        data = {k: v for k, v in data.items() if k != "arch"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown CLIPConfig field(s) {unknown}; its fields are {', '.join(sorted(known))}")
        return cls(**data)

    def count_params(self) -> int:
        """The parameters CLIPModel(self) creates, counted from the config (no torch needed)."""
        t, v, P = self.text, self.vision, self.projection_dim

        def blocks(d: int, d_ff: int, n: int) -> int:
            attention = 4 * (d * d + d)
            mlp = d * d_ff + d_ff + d_ff * d + d
            return n * (attention + mlp + 2 * 2 * d)  # + two LayerNorms

        text = t.vocab_size * t.d_model + t.max_seq_len * t.d_model + blocks(t.d_model, t.d_ff, t.n_layers)
        text += 2 * t.d_model  # final LayerNorm
        patch = v.n_channels * v.patch_size**2 * v.d_model  # the patch convolution has no bias
        vision = patch + v.d_model + (v.n_patches + 1) * v.d_model  # + class token + positions
        vision += blocks(v.d_model, v.d_ff, v.n_layers) + 2 * 2 * v.d_model  # + pre and post LayerNorms
        return text + vision + (t.d_model + v.d_model) * P + 1  # projections, logit_scale


def vision_from_dict(data: dict[str, Any]) -> VisionConfig:
    known = {f.name for f in dataclasses.fields(VisionConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown CLIP vision config field(s) {unknown}; its fields are {', '.join(sorted(known))}")
    return VisionConfig(**data)
