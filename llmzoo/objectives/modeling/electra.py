"""ELECTRA's generator + discriminator pair (Clark et al. 2020, "ELECTRA: Pre-training Text Encoders
as Discriminators Rather Than Generators", sections 2 and 3.2).

The generator is a small masked LM (1/4 to 1/3 of the discriminator's hidden size works best,
section 3.2 and Table 6); the discriminator is the full-size encoder with a replaced-token-detection
head. The two share their embeddings ("tied embeddings", section 3.2): the token, position and
token-type tables and the embedding LayerNorm are one module; each model keeps its own projection
from the embedding size to its hidden size (the generator is narrower). The generator's MLM output
layer stays tied to the shared token table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.models.build import build_model
from llmzoo.models.outputs import ModelOutput

# The parts of llmzoo.nn.embedding.Embeddings the two models share (not `project`: widths differ).
SHARED_EMBEDDINGS = ("tokens", "positions", "token_types", "norm")


def generator_config(discriminator: ModelConfig, fraction: float = 0.25) -> ModelConfig:
    """The generator: the discriminator's shape at `fraction` of its width (heads of the same size),
    its embedding size unchanged so the tables can be shared, with an MLM head."""
    if not 0.0 < fraction <= 1.0:
        raise LlmzooError(f"ELECTRA's generator fraction must be in (0, 1], got {fraction}")
    head_dim = discriminator.hd
    d_model = max(head_dim, int(round(discriminator.d_model * fraction / head_dim)) * head_dim)
    return replace(
        discriminator, name=f"{discriminator.name}-generator", head="mlm", pooler=None, d_model=d_model,
        n_heads=d_model // head_dim, head_dim=None, n_kv_heads=None,
        d_ff=max(1, discriminator.d_ff * d_model // discriminator.d_model), embed_dim=discriminator.emb_dim,
    )


class ElectraPretrainingModel(nn.Module):
    """generator(masked ids) -> MLM logits; discriminator(ids with samples in) -> one logit per token."""

    def __init__(self, discriminator: ModelConfig, generator: ModelConfig | None = None,
                 generator_fraction: float = 0.25) -> None:
        super().__init__()
        if discriminator.arch != "encoder" or discriminator.head != "rtd":
            raise LlmzooError(f"ELECTRA's discriminator must be an encoder with head='rtd', got "
                              f"arch={discriminator.arch!r} head={discriminator.head!r}")
        generator = generator or generator_config(discriminator, generator_fraction)
        if generator.emb_dim != discriminator.emb_dim or generator.vocab_size != discriminator.vocab_size:
            raise LlmzooError("ELECTRA's generator and discriminator must have the same embedding size and vocabulary "
                              "to share their embeddings")
        self.config = discriminator
        self.discriminator = build_model(discriminator)
        self.generator = build_model(generator)
        for name in SHARED_EMBEDDINGS:
            if hasattr(self.discriminator.embeddings, name):
                setattr(self.generator.embeddings, name, getattr(self.discriminator.embeddings, name))
        if generator.tie_embeddings:
            self.generator.lm_head.weight = self.discriminator.embeddings.tokens.weight

    def generate(self, input_ids: torch.Tensor, **inputs: torch.Tensor) -> ModelOutput:
        """The generator's MLM outputs (`logits` (B, T, V)) for the masked input."""
        return self.generator(input_ids, **inputs)

    def discriminate(self, input_ids: torch.Tensor, **inputs: torch.Tensor) -> ModelOutput:
        """The discriminator's outputs, with its per-token logits as `rtd_logits` (B, T)."""
        out = self.discriminator(input_ids, **inputs)
        out["rtd_logits"] = out.pop("logits")
        return out

    def forward(self, input_ids: torch.Tensor, *,
                replace: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None,
                **inputs: torch.Tensor) -> ModelOutput:
        """The discriminator (what fine-tuning keeps); with `replace`, one pretraining step's model side:
        generator pass, `replace(gen_logits)` -> the discriminator's inputs (ids with samples in),
        discriminator pass. Both passes run inside this one forward so that a DDP or FSDP wrapper,
        which only hooks `forward`, syncs and unshards for both (forward_for_objective passes `replace`)."""
        if replace is None:
            return self.discriminate(input_ids, **inputs)
        gen_logits = self.generate(input_ids, **inputs)["logits"]
        rtd_logits = self.discriminate(**replace(gen_logits))["rtd_logits"]
        return ModelOutput(logits=gen_logits, rtd_logits=rtd_logits)
