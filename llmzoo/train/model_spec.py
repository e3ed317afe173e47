"""A recipe's `model` setting, checked and typed before any work starts.

Command-line overrides arrive as YAML scalars (`model.tie_embeddings=maybe` is the string
'maybe', `model.norm_eps=1e-5` is a string too, as YAML 1.1 reads it), and ModelConfig's frozen
dataclass does not check types: a wrong one trained, or failed deep inside the model after the
tokenizer and data were built. Here every field is converted to the type ModelConfig declares, or
refused in one line naming the key and the type, and the config is then built once (with a
stand-in vocabulary) so contradictions between fields surface before data preparation too.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from functools import lru_cache
from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError, LlmzooError

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@lru_cache(maxsize=1)
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(ModelConfig)


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """(the type inside `X | None`, whether None is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), len(args) < len(typing.get_args(hint))
    return hint, False


def _type_name(hint: Any, optional: bool) -> str:
    name = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
    return f"{name} or null" if optional else name


def coerce_model_field(key: str, value: Any) -> Any:
    """`value` as ModelConfig field `key`'s type; ConfigError naming the key and the type otherwise."""
    hint, optional = _split_optional(_hints()[key])
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"model.{key} must be {_type_name(hint, False)}, got null")
    bad = ConfigError(f"model.{key} must be {_type_name(hint, optional)}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad
    if hint is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                number = float(value)  # "4" and "1e3" alike
            except ValueError:
                raise bad from None
            if number.is_integer():
                return int(number)
        raise bad
    if hint is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if hint is str:
        if not isinstance(value, str):
            raise bad
        return value
    return value  # tuples, rope_scaling, extra: ModelConfig.from_dict converts and checks them


def _unknown_field(key: str) -> ConfigError:
    known = [f.name for f in dataclasses.fields(ModelConfig)] + ["from"]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean 'model.{close[0]}'?" if close else "the fields are listed in llmzoo/config.py"
    return ConfigError(f"unknown model field {key!r}; {hint}")


def normalise_model_spec(spec: Any) -> str | dict[str, Any]:
    """The recipe's `model` with its fields typed; ConfigError on an unknown field or zoo name,
    a value of the wrong type, or fields that contradict each other."""
    from llmzoo.train.model import resolve_model_config

    if isinstance(spec, str):
        typed: str | dict[str, Any] = spec
    else:
        typed = {}
        for key, value in spec.items():
            key = str(key)
            if key == "from":
                typed[key] = str(value)
            elif key not in _hints():
                raise _unknown_field(key)
            else:
                typed[key] = coerce_model_field(key, value)
    try:
        # vocab_size=1 stands in for the dataset's: only the fields given here are checked
        resolve_model_config(typed, vocab_size=1, eos_id=None, name="model")
    except LlmzooError:
        raise
    except (TypeError, ValueError) as e:  # a field of the wrong shape (a tuple given as a number, ...)
        raise ConfigError(f"model: {e}") from None
    return typed


def normalise_base_spec(spec: Any) -> dict[str, Any]:
    """A fine-tune's `model`: `from: SOURCE` (anything llmzoo.load reads; a bare string is the
    source) plus optional ModelConfig fields to change on the loaded base (e.g. rope_scaling for
    context extension), each typed as ModelConfig declares. The source itself is resolved when the
    run starts (loading it is the check)."""
    if isinstance(spec, str):
        spec = {"from": spec}
    if not isinstance(spec, dict) or not str(spec.get("from") or "").strip():
        raise ConfigError("a fine-tuning recipe names its base model as model.from=SOURCE (a zoo name with "
                          "weights, an HF or llmzoo directory, or a .gguf file)")
    typed: dict[str, Any] = {"from": str(spec["from"])}
    for key, value in spec.items():
        key = str(key)
        if key == "from":
            continue
        if key not in _hints():
            raise _unknown_field(key)
        typed[key] = coerce_model_field(key, value)
    return typed
