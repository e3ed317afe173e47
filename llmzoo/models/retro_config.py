"""RetroConfig: a RETRO model's two stacks (Borgeaud et al. 2022, "Improving language models by retrieving
from trillions of tokens").

`decoder` is a ModelConfig whose per-layer spec puts chunked cross-attention in the RETRO layers
(cross_attentions, cca_chunk, cca_memory_dim); `encoder` is the small bidirectional neighbour encoder
(arch 'encoder', max_seq_len = the neighbour length r = chunk + continuation = 2m). Importing this module
never imports torch (like clip_config), so the zoo stays cheap to list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmzoo.config import ModelConfig, config_json
from llmzoo.errors import ConfigError


def retro_layers(n_layers: int, start: int = 6, every: int = 3) -> tuple[str, ...]:
    """The per-layer spec of RETRO's CCA layers: 1-based layers start, start + every, ... <= n_layers (the
    paper's P = {6, 9, 12, ...}: "every 3 layers starting from 6"), spelled out for every layer."""
    if start < 1 or every < 1:
        raise ConfigError(f"RETRO layers start at a 1-based layer >= 1 every >= 1 layers, got start={start}, every={every}")
    return tuple("chunked" if i + 1 >= start and (i + 1 - start) % every == 0 else "none" for i in range(n_layers))


@dataclass(frozen=True)
class RetroConfig:
    name: str
    decoder: ModelConfig
    encoder: ModelConfig
    n_neighbours: int = 2  # k retrieved per chunk (the paper trains with k = 2)

    def __post_init__(self) -> None:
        d, e = self.decoder, self.encoder
        cca = [i for i in range(d.n_layers) if d.cross_kind(i) == "chunked"]
        checks = [
            (bool(cca), f"{self.name}: the decoder has no chunked cross-attention layer; set cross_attentions "
                        "(llmzoo.models.retro_config.retro_layers)"),
            (e.arch == "encoder", f"{self.name}: the neighbour encoder must be arch 'encoder', got {e.arch!r}"),
            ((d.cca_memory_dim or d.d_model) == e.d_model,
             f"{self.name}: decoder cca_memory_dim={d.cca_memory_dim} must equal the encoder's d_model={e.d_model}"),
            (e.vocab_size == d.vocab_size, f"{self.name}: encoder vocab {e.vocab_size} != decoder vocab {d.vocab_size}; "
                                           "neighbours are tokens of the decoder's vocabulary"),
            (self.n_neighbours >= 1, f"{self.name}: n_neighbours must be >= 1, got {self.n_neighbours}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    @property
    def chunk(self) -> int:
        return self.decoder.cca_chunk

    @property
    def neighbour_len(self) -> int:
        """r: tokens per neighbour (a chunk and its continuation: 2m in the paper)."""
        return self.encoder.max_seq_len

    @property
    def cca_layers(self) -> list[int]:
        """0-based indices of the decoder layers with chunked cross-attention."""
        return [i for i in range(self.decoder.n_layers) if self.decoder.cross_kind(i) == "chunked"]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "decoder": self.decoder.to_dict(), "encoder": self.encoder.to_dict(),
                "n_neighbours": self.n_neighbours}

    def to_json(self, path: str | Path | None = None) -> str:
        """As ModelConfig.to_json: what a training checkpoint keeps (llmzoo/train/checkpoint.py)."""
        return config_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RetroConfig":
        return cls(name=data["name"], decoder=ModelConfig.from_dict(data["decoder"]),
                   encoder=ModelConfig.from_dict(data["encoder"]), n_neighbours=data.get("n_neighbours", 2))

    def count_params(self, embeddings: bool = True) -> int:
        """The parameters Retro(self) creates (tied weights once), counted from the configs without torch (the
        catalog lists it instantly; tests check it against a meta build). embeddings=False leaves out the token
        tables (and an untied LM head), as the paper's Table 2 counts."""
        from llmzoo.flops import block_params, count_params

        d, e = self.decoder, self.encoder
        norm = lambda c, dim: dim * (1 if c.norm == "rmsnorm" else 2 if c.norm_bias else 1)
        D = d.d_model
        n = count_params(d)  # the decoder with its CCA layers (llmzoo.flops.cross_params)
        # the encoder: tokens, positions, the chunk states' norm and projection, its blocks, the final norm
        n += e.vocab_size * e.d_model + e.max_seq_len * e.d_model + norm(d, D) + D * e.d_model + norm(e, e.d_model)
        n += sum(block_params(e, cross_attention=True, layer=i) for i in range(e.n_layers))
        if not embeddings:
            n -= d.vocab_size * D * (1 if d.tie_embeddings or d.head != "lm" else 2) + e.vocab_size * e.d_model
        return n

    def summary(self) -> list[tuple[str, str]]:
        """`llmzoo show`'s lines for the two stacks."""
        d, e = self.decoder, self.encoder
        return [
            ("decoder", f"{d.n_layers} layers, d_model {d.d_model}, {d.n_heads} heads of {d.hd}, d_ff {d.d_ff} "
                        f"{d.activation}, {d.position} positions, vocab {d.vocab_size}, context {d.max_seq_len}"),
            ("CCA layers", f"layers {', '.join(str(i + 1) for i in self.cca_layers)} (1-based) read the "
                               f"neighbours of the preceding {self.chunk}-token chunk"),
            ("encoder", f"neighbours: {e.n_layers} bidirectional layers, d_model {e.d_model}, {e.n_heads} heads of {e.hd}, "
                                  f"d_ff {e.d_ff}; {self.n_neighbours} neighbours of {self.neighbour_len} tokens a chunk, "
                                  "conditioned on the chunk's states at the first CCA layer"),
        ]
