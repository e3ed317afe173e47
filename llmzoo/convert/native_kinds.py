"""The kinds of model llmzoo's own directory format holds: a plain zoo stack, or one of the
pretraining wrappers that no transformers class expresses (ELECTRA's generator + discriminator
pair, SpanBERT's encoder + span-boundary head, XLM's language embeddings around a stack).

Each kind says how to recognise its model, which constructor arguments beyond the ModelConfig
it needs (`options`, plain JSON), and how to build an empty one from them again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import CheckpointError


@dataclass(frozen=True)
class Kind:
    name: str
    matches: Callable[[nn.Module], bool]
    options: Callable[[nn.Module], dict[str, Any]]
    build: Callable[[ModelConfig, dict[str, Any]], nn.Module]
    description: str  # why transformers has no layout for it, for the save note


def _is(class_path: str) -> Callable[[nn.Module], bool]:
    module, name = class_path.rsplit(".", 1)

    def matches(model: nn.Module) -> bool:
        import importlib

        return isinstance(model, getattr(importlib.import_module(module), name))

    return matches


def _build_stack(config: ModelConfig, options: dict[str, Any]) -> nn.Module:
    from llmzoo.models.build import build_model

    return build_model(config)


def _build_electra(config: ModelConfig, options: dict[str, Any]) -> nn.Module:
    from llmzoo.objectives.modeling.electra import ElectraPretrainingModel

    return ElectraPretrainingModel(config, generator=ModelConfig.from_dict(options["generator"]))


def _build_spanbert(config: ModelConfig, options: dict[str, Any]) -> nn.Module:
    from llmzoo.objectives.modeling.spanbert import SpanBERTModel

    return SpanBERTModel(config, max_span_offset=int(options["max_span_offset"]))


def _build_languages(config: ModelConfig, options: dict[str, Any]) -> nn.Module:
    from llmzoo.models.build import build_model
    from llmzoo.objectives.modeling.languages import LanguageEmbeddings

    return LanguageEmbeddings(build_model(config), n_langs=int(options["n_langs"]))


WRAPPERS: tuple[Kind, ...] = (
    Kind("electra_pretraining", _is("llmzoo.objectives.modeling.electra.ElectraPretrainingModel"),
         lambda m: {"generator": m.generator.config.to_dict()}, _build_electra,
         "ELECTRA's generator + discriminator pair with shared embeddings"),
    Kind("spanbert", _is("llmzoo.objectives.modeling.spanbert.SpanBERTModel"),
         lambda m: {"max_span_offset": m.sbo.offsets.num_embeddings}, _build_spanbert,
         "SpanBERT's encoder with its span-boundary head"),
    Kind("language_embeddings", _is("llmzoo.objectives.modeling.languages.LanguageEmbeddings"),
         lambda m: {"n_langs": m.langs.num_embeddings}, _build_languages,
         "XLM's language embeddings around the stack"),
)
STACK = Kind("stack", lambda m: True, lambda m: {}, _build_stack, "this model")
KINDS: dict[str, Kind] = {k.name: k for k in (*WRAPPERS, STACK)}


def kind_of(model: nn.Module) -> Kind:
    """The kind of `model`: a known wrapper, else a plain stack (checked by `check_rebuilds`)."""
    for kind in WRAPPERS:
        if kind.matches(model):
            return kind
    return STACK


def kind_named(name: Any) -> Kind:
    if name not in KINDS:
        raise CheckpointError(f"llmzoo checkpoint of unknown model kind {name!r} (known: {', '.join(KINDS)}); "
                              f"it was written by a newer llmzoo?")
    return KINDS[name]
