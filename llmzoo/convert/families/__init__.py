"""Registry of HF conversion families: every module in this package defines FAMILIES.

Modules are discovered, so adding a family is adding a file; nothing else to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from llmzoo.convert.hf import Family
from llmzoo.errors import CheckpointError


@lru_cache(maxsize=1)
def all_families() -> dict[str, Family]:
    """HF model_type -> Family."""
    by_type: dict[str, Family] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for family in getattr(module, "FAMILIES", ()):
            for model_type in family.model_types:
                by_type[model_type] = family
    return by_type


def family_for_model_type(model_type: str | None) -> Family:
    families = all_families()
    if model_type not in families:
        raise CheckpointError(
            f"architecture model_type={model_type!r} is not supported; supported: {', '.join(sorted(families))}"
        )
    return families[model_type]


def family_by_name(name: str) -> Family:
    for family in all_families().values():
        if family.name == name or name in family.zoo_families:
            return family
    raise CheckpointError(f"llmzoo has no transformers converter for the {name!r} family")
