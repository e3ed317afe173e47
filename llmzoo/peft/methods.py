"""The registry of PEFT methods: what `llmzoo.peft.apply/merge/disabled/save_adapter/load_adapter`
and `llmzoo adapter merge|info` look up, so every method works through the same few functions.

How a method registers (one file per method, e.g. llmzoo/peft/ia3.py):

    from llmzoo.peft.methods import Method, register

    register(Method(
        name="ia3",                 # what users pass: llmzoo.peft.apply(model, "ia3", ...)
        peft_type="IA3",            # peft's adapter_config.json "peft_type"; None for a method peft lacks,
                                    # whose directory then says "llmzoo_method": name instead (see save.py)
        module_types=(IA3Linear,),  # the nn.Module classes it adds: how a model's method is recognised
        apply=apply_ia3,            # apply(model, **options) -> None; the base is already frozen, new
                                    # parameters must have requires_grad=True; bad options raise LlmzooError
        save=save_ia3,              # save(model, names: ModuleNames) -> (tensors, config): peft's key names
                                    # ("base_model.model.<hf module>.ia3_l") and peft's config fields; the
                                    # caller adds peft_type, task_type, base_model_name_or_path and writes
        load=load_ia3,              # load(model, config, tensors, names, where) -> None: wrap and fill in
                                    # place (base already frozen); a tensor that fits no module of this
                                    # base raises LlmzooError naming it; `where` is the directory, for messages
        describe=describe_ia3,      # describe(config, shapes) -> dict of method fields for `adapter info`
        merge=merge_ia3,            # merge(model) -> None, folding into the weights; None: not mergeable
        title="(IA)3",              # how messages name it
    ))

and then add the module's dotted path to BUILTIN below (imported on first lookup, so a method is
found whichever llmzoo entry point runs first).

Disabling: every module of `module_types` has a bool attribute `disabled`; when True it computes
what the base computes (`llmzoo.peft.disabled(model)` sets it on all of them). One adapter per
model: apply refuses a second one, of any method.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from llmzoo.errors import LlmzooError

# Modules that register a method when imported. Add yours here.
BUILTIN = ("llmzoo.peft.lora_method", "llmzoo.peft.ia3", "llmzoo.peft.prompt_tuning", "llmzoo.peft.p_tuning",
           "llmzoo.peft.prefix_tuning", "llmzoo.peft.adaption_prompt", "llmzoo.peft.bottleneck")


@dataclass(frozen=True)
class Method:
    name: str
    peft_type: str | None
    module_types: tuple[type[nn.Module], ...]
    apply: Callable[..., None]
    save: Callable[..., tuple[dict, dict]]
    load: Callable[..., None]
    describe: Callable[[dict, dict], dict]
    merge: Callable[[nn.Module], None] | None = None
    title: str = ""  # how messages name it ("LoRA"); the name when empty

    @property
    def display(self) -> str:
        return self.title or self.name


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"PEFT method {method.name!r} is registered twice")
    _METHODS[method.name] = method
    return method


def _load_builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


def methods() -> list[Method]:
    _load_builtin()
    return list(dict.fromkeys(_METHODS.values()))


def method_named(name: str) -> Method:
    _load_builtin()
    if name not in _METHODS:
        raise LlmzooError(f"unknown PEFT method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def method_for_config(config: dict[str, Any], where: str) -> Method:
    """The method an adapter_config.json names: peft's peft_type, or llmzoo's own llmzoo_method."""
    if "llmzoo_method" in config:
        return method_named(config["llmzoo_method"])
    kind = config.get("peft_type")
    for method in methods():
        if method.peft_type is not None and method.peft_type == kind:
            return method
    known = sorted(m.peft_type for m in methods() if m.peft_type)
    raise LlmzooError(f"{where} holds a peft {kind} adapter, which llmzoo does not load; it loads peft types "
                      f"{', '.join(known)}")


def adapter_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every module an adapter (of any registered method) added, by name."""
    types = tuple(t for m in methods() for t in m.module_types)
    return {n: m for n, m in model.named_modules() if isinstance(m, types)}


def method_of(model: nn.Module) -> Method | None:
    """The method of the adapter on `model`, or None when it has none."""
    modules = list(adapter_modules(model).values())
    for method in methods():
        if any(isinstance(m, method.module_types) for m in modules):
            return method
    return None
