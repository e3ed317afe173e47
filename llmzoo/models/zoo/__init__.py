"""The zoo catalog: one ModelCard per milestone model (and size) named in the surveys in `seeds/`,
with a full-size ModelConfig wherever the architecture is published.

    from llmzoo.models.zoo import catalog, catalog_names, get_card, get_config
    get_card("llama-2-7b").params_published     # 7e9
    build_model(get_config("gpt-3-175b"), device="meta")

Importing this package never imports torch: `llmzoo models` lists ~200 models instantly.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.models.zoo.card import ModelCard

__all__ = ["ModelCard", "catalog", "catalog_aliases", "catalog_names", "get_card", "get_config"]

# One module per family group; each defines CARDS. Order is the order of `llmzoo models`.
_MODULES = (
    "encoders", "encoder_decoders", "gpt", "eleuther", "llama", "llama_derived", "mistral", "palm",
    "deepmind", "google", "opt", "bloom", "code", "others", "moe", "closed", "multimodal",
    "packaged",
)


@lru_cache(maxsize=1)
def _registry() -> tuple[dict[str, ModelCard], dict[str, str]]:
    cards: dict[str, ModelCard] = {}
    aliases: dict[str, str] = {}
    for module_name in _MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        for card in module.CARDS:
            if card.name in cards or card.name in aliases:
                raise ConfigError(f"zoo: duplicate model name {card.name!r} (in {module_name})")
            cards[card.name] = card
    for card in cards.values():
        for alias in card.aliases:
            if alias in cards or alias in aliases:
                raise ConfigError(f"zoo: alias {alias!r} of {card.name} is already taken")
            aliases[alias] = card.name
    return cards, aliases


def catalog() -> list[ModelCard]:
    """Every card, grouped by family module."""
    return list(_registry()[0].values())


def catalog_names() -> list[str]:
    """Canonical lower-case names ("llama-2-7b", "gpt-3-175b", "bert-base", ...)."""
    return list(_registry()[0])


def catalog_aliases() -> dict[str, str]:
    """Other spellings users type ("gpt2", "llama2-7b") -> canonical catalog name."""
    return dict(_registry()[1])


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def get_card(name: str) -> ModelCard:
    cards, aliases = _registry()
    key = _normalise(name)
    key = aliases.get(key, key)
    if key not in cards:
        from llmzoo.hub import suggest

        raise LlmzooError(f"unknown model {name!r}; {suggest(key, list(cards) + list(aliases))}")
    return cards[key]


def get_config(name: str, missing_ok: bool = False) -> ModelConfig | None:
    """The full-size config of a model whose architecture is published. Models without one
    (closed, or not expressible as a ModelConfig) return None with `missing_ok`, else raise."""
    card = get_card(name)
    if card.config is None and not missing_ok:
        why = ("its architecture is not public" if not card.open_weights
               else "its architecture is not expressible as a ModelConfig")
        raise LlmzooError(f"{card.name} has a model card but no config ({why}); see `llmzoo show {card.name}`")
    return card.config
