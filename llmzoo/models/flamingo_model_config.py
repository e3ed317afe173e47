"""FlamingoModelConfig: a whole Flamingo model at full size (Alayrac et al. 2022), for the zoo's cards.

Three parts: the frozen LM (a plain ModelConfig: Chinchilla for Flamingo-80B), the trained parts
(FlamingoConfig: Perceiver Resampler, GATED XATTN-DENSE every k-th block) and the frozen vision encoder.
The paper's encoder is an NFNet-F6, which llmzoo does not build, so it is recorded as its width (what
the resampler and the gated layers read) and its published parameter count. `count_params` adds the
three without torch (the catalog lists it instantly; tests check the LM + gated layers and the
resampler against meta-device builds). Importing this module never imports torch (like retro_config).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmzoo.config import ModelConfig, config_json
from llmzoo.errors import ConfigError
from llmzoo.models.flamingo_config import FlamingoConfig


@dataclass(frozen=True)
class FlamingoModelConfig:
    name: str
    lm: ModelConfig  # the frozen decoder, plain (no cross_attentions): `decoder` adds the gated layers
    flamingo: FlamingoConfig
    vision_dim: int  # the vision encoder's output width: the resampler's width and the gated layers' memory
    vision_params: int  # the frozen vision encoder's parameters, as published (it is not built here)
    vision_name: str = "vision encoder"

    def __post_init__(self) -> None:
        for name in ("vision_dim", "vision_params"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{self.name}: {name} must be a positive integer, got {value!r}")
        if self.flamingo.cross_attention_interval > self.lm.n_layers:
            raise ConfigError(f"{self.name}: cross_attention_interval={self.flamingo.cross_attention_interval} "
                              f"exceeds the LM's n_layers={self.lm.n_layers}")
        self.flamingo.decoder_config(self.lm, self.vision_dim)  # a ConfigError where the LM cannot take gated layers

    @property
    def decoder(self) -> ModelConfig:
        """The Flamingo decoder: the LM with 'gated' layers before blocks 0, k, 2k, ... (build_model builds it)."""
        return self.flamingo.decoder_config(self.lm, self.vision_dim)

    @property
    def gated_layers(self) -> list[int]:
        """0-based indices of the decoder blocks a GATED XATTN-DENSE layer runs before."""
        return [i for i in range(self.lm.n_layers) if self.decoder.cross_kind(i) == "gated"]

    def resampler_params(self) -> int:
        """llmzoo.nn.perceiver_resampler.PerceiverResampler(vision_dim, ...): the latents, per layer two
        LayerNorms and bias-free q/k/v/o (+ per-head q/k LayerNorms), a LayerNorm and a 4x bias-free FFW,
        then the output LayerNorm."""
        f, D = self.flamingo, self.vision_dim
        inner = f.resampler_heads * f.resampler_head_dim
        attn = 2 * 2 * D + 4 * D * inner + (2 * 2 * f.resampler_head_dim if f.resampler_qk_norm else 0)
        ffn = 2 * D + 2 * D * 4 * D
        return f.n_latents * D + f.resampler_depth * (attn + ffn) + 2 * D

    def count_params(self) -> int:
        """The LM with its gated layers, the resampler and the (published) vision encoder."""
        from llmzoo.flops import count_params

        return count_params(self.decoder) + self.resampler_params() + self.vision_params

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lm": self.lm.to_dict(), "flamingo": dataclasses.asdict(self.flamingo),
                "vision_dim": self.vision_dim, "vision_params": self.vision_params, "vision_name": self.vision_name}

    def to_json(self, path: str | Path | None = None) -> str:
        return config_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FlamingoModelConfig":
        try:
            flamingo = FlamingoConfig(**data["flamingo"])
            return cls(name=data["name"], lm=ModelConfig.from_dict(data["lm"]), flamingo=flamingo,
                       vision_dim=data["vision_dim"], vision_params=data["vision_params"],
                       vision_name=data.get("vision_name", "vision encoder"))
        except (KeyError, TypeError) as e:
            raise ConfigError(f"invalid FlamingoModelConfig: {e}") from None

    def summary(self) -> list[tuple[str, str]]:
        """`llmzoo show`'s lines for the three parts."""
        from llmzoo.flops import count_params

        lm, f, d = self.lm, self.flamingo, self.decoder
        n_lm, n_gated = count_params(lm), count_params(d) - count_params(lm)
        heads = f.xattn_heads or lm.n_heads
        layers, k = self.gated_layers, f.cross_attention_interval
        where = "every block" if k == 1 else f"one every {k} blocks"
        return [
            ("vision encoder", f"{self.vision_name}, frozen, {self.vision_dim}-wide features; not built by llmzoo, "
                               f"counted as its published {self.vision_params / 1e6:,.0f}M parameters"),
            ("resampler", f"Perceiver Resampler, trained: {f.resampler_depth} layers of width {self.vision_dim}, "
                          f"{f.resampler_heads} heads of {f.resampler_head_dim}, {f.n_latents} visual tokens an image "
                          f"({self.resampler_params() / 1e6:,.0f}M parameters)"),
            ("language model", f"{lm.name}, frozen: {lm.n_layers} layers, d_model {lm.d_model}, {lm.n_heads} heads of "
                               f"{lm.hd}, d_ff {lm.d_ff} {lm.activation}, {lm.position} positions, vocab {lm.vocab_size} "
                               f"({n_lm / 1e9:,.1f}B parameters)"),
            ("gated xattn", f"{len(layers)} GATED XATTN-DENSE layers, trained, before blocks "
                            f"{', '.join(str(i + 1) for i in layers)} (1-based; {where}): {heads} heads of {lm.d_model // heads} "
                            f"reading the visual tokens, d_ff {d.xattn_d_ff or lm.d_ff}, {f.gate} tanh gates "
                            f"({n_gated / 1e9:,.2f}B parameters)"),
        ]
