"""FlamingoConfig: what Flamingo adds to a frozen decoder and a frozen vision tower (Alayrac et al. 2022).

The LM and the vision encoder keep their own configs (ModelConfig, VisionConfig); this one holds only the
new, trained parts: the Perceiver Resampler and the GATED XATTN-DENSE layers, and where those go.
`decoder_config` turns an LM's config into the Flamingo decoder's: the same ModelConfig with 'gated'
entries in its per-layer cross_attentions spec. Importing this module never imports torch (like clip_config).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmzoo.config import ACTIVATIONS, XATTN_GATES, ModelConfig
from llmzoo.errors import ConfigError

GATES = XATTN_GATES  # one tanh gate per sub-layer (the paper) or one per channel (IDEFICS' alpha_type)


@dataclass(frozen=True)
class FlamingoConfig:
    # A gated cross-attention layer before decoder blocks 0, k, 2k, ... (IDEFICS' cross_layer_interval;
    # Flamingo-3B inserts one before every block, Flamingo-80B every 7th: section 2.2 / appendix B.1).
    cross_attention_interval: int = 4
    n_latents: int = 64  # visual tokens per image out of the resampler (the paper's 64)
    resampler_depth: int = 6
    resampler_heads: int = 8
    resampler_head_dim: int = 64
    resampler_activation: str = "gelu"  # the paper's FFW; IDEFICS uses "relu"
    resampler_qk_norm: bool = False
    xattn_heads: int | None = None  # default: the LM's n_heads
    xattn_d_ff: int | None = None  # default: the LM's d_ff
    gate: str = "scalar"
    xattn_qk_norm: bool = False
    # The <image> token: a text position where an image sits. Without it, pass media_locations.
    image_token_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("cross_attention_interval", "n_latents", "resampler_depth", "resampler_heads",
                     "resampler_head_dim", "xattn_heads", "xattn_d_ff"):
            value = getattr(self, name)
            if value is None and name in ("xattn_heads", "xattn_d_ff"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"FlamingoConfig.{name} must be a positive integer, got {value!r}")
        if self.resampler_activation not in ACTIVATIONS:
            raise ConfigError(f"FlamingoConfig.resampler_activation {self.resampler_activation!r} is not one of {ACTIVATIONS}")
        if self.gate not in GATES:
            raise ConfigError(f"FlamingoConfig.gate {self.gate!r} is not one of {GATES}")

    def has_cross_attention(self, layer: int) -> bool:
        """Whether a gated cross-attention layer runs before decoder block `layer`."""
        return layer % self.cross_attention_interval == 0

    @property
    def cross_attentions(self) -> tuple[str, ...]:
        """The per-layer spec: 'gated' before blocks 0, k, 2k, ... (cycled over the layers)."""
        return ("gated",) + ("none",) * (self.cross_attention_interval - 1)

    def decoder_config(self, lm: ModelConfig, visual_dim: int) -> ModelConfig:
        """The Flamingo decoder: the LM's config with gated layers reading `visual_dim`-wide visual tokens."""
        target = lm.replace(cross_attentions=self.cross_attentions, cca_memory_dim=visual_dim, xattn_heads=self.xattn_heads,
                            xattn_d_ff=self.xattn_d_ff, xattn_gate=self.gate, xattn_qk_norm=self.xattn_qk_norm)
        if lm != target and any(lm.cross_kind(i) != "none" for i in range(lm.n_layers)):
            raise ConfigError(f"Flamingo: decoder {lm.name} has cross_attentions={lm.cross_attentions}, not this "
                              f"FlamingoConfig's {target.cross_attentions} over {visual_dim}-wide visual tokens; "
                              "pass the plain LM or a decoder built from decoder_config")
        return target
