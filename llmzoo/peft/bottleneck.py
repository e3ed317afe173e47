"""Bottleneck adapters: Houlsby et al. 2019 ("Parameter-Efficient Transfer Learning for NLP") and
Pfeiffer et al. 2020 ("AdapterFusion: Non-Destructive Task Composition for Transfer Learning").

    llmzoo.peft.apply(model, "houlsby", r=16)    # two per layer: after attention and after the FFN
    llmzoo.peft.apply(model, "pfeiffer", r=16)   # one per layer: after the FFN

An adapter maps a sub-layer's output h to h + W_up f(W_down h + b_down) + b_up, placed after the
sub-layer's output projection and before the residual add (Houlsby's figure 2); so it wraps that
projection (self_attn.o_proj, mlp.down_proj), keeping its `weight`/`bias` names. W_up and b_up start
at zero, so the model computes exactly what the base did until training moves them (Houlsby's
near-identity initialisation, made exact). Each adapter has 2 d r + d + r parameters. Houlsby also
trains the layer norms; here only the adapters train (add norms by hand if wanted). f defaults to
the AdapterHub defaults: swish for Houlsby, ReLU for Pfeiffer. Not mergeable (f is non-linear).

Saved in an llmzoo-defined adapter directory (peft has no such method), laid out like peft's:
adapter_config.json = {"llmzoo_method": "houlsby"|"pfeiffer", "r": R, "non_linearity": "swish",
"target_modules": [llmzoo module names], "base_model_name_or_path": ..., "task_type": ...} and
adapter_model.safetensors with `<llmzoo module>.adapter_down.weight/.bias` and
`<llmzoo module>.adapter_up.weight/.bias`, under llmzoo's own module names.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.methods import Method, register
from llmzoo.peft.module_io import module_count
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.targets import find_targets

ACTIVATIONS = {"relu": F.relu, "swish": F.silu, "gelu": F.gelu, "tanh": torch.tanh}
PLACES = {"houlsby": ("self_attn.o_proj", "mlp.down_proj"), "pfeiffer": ("mlp.down_proj",)}
DEFAULT_ACTIVATION = {"houlsby": "swish", "pfeiffer": "relu"}
OPTIONS = ("r", "non_linearity")
SUFFIXES = ("adapter_down.weight", "adapter_down.bias", "adapter_up.weight", "adapter_up.bias")


class BottleneckLinear(nn.Module):
    """A linear layer followed by a residual bottleneck adapter on its output."""

    method = ""

    def __init__(self, base: nn.Linear, r: int, non_linearity: str) -> None:
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias  # the base's own Parameters, names kept
        self.r, self.non_linearity = r, non_linearity
        kw = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.adapter_down = nn.Linear(self.out_features, r, **kw)
        self.adapter_up = nn.Linear(r, self.out_features, **kw)
        nn.init.zeros_(self.adapter_up.weight)  # zero up-projection: the adapter starts as the identity
        nn.init.zeros_(self.adapter_up.bias)
        self.disabled = False
        self.train(base.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.linear(x, self.weight, self.bias)
        if self.disabled:
            return h
        return h + self.adapter_up(ACTIVATIONS[self.non_linearity](self.adapter_down(h)))

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, {self.method} adapter r={self.r}, {self.non_linearity}"


class HoulsbyLinear(BottleneckLinear):
    method = "houlsby"


class PfeifferLinear(BottleneckLinear):
    method = "pfeiffer"


CLASSES = {"houlsby": HoulsbyLinear, "pfeiffer": PfeifferLinear}


def check_options(method: str, options: dict[str, Any], d_model: int) -> tuple[int, str]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown {method} adapter option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    r = options.get("r", max(1, d_model // 16))  # AdapterHub's default reduction factor 16
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise LlmzooError(f"{method} adapter bottleneck size r must be a positive integer, got {r!r}")
    act = options.get("non_linearity", DEFAULT_ACTIVATION[method])
    if act not in ACTIVATIONS:
        raise LlmzooError(f"non_linearity {act!r} is not one of {', '.join(ACTIVATIONS)}")
    return r, act


def wrap(model: nn.Module, method: str, names: list[str], r: int, act: str) -> None:
    for name in names:
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, CLASSES[method](getattr(owner, attr), r, act))


def bottleneck_modules(model: nn.Module, method: str) -> dict[str, BottleneckLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, CLASSES[method])}


def make_method(method: str) -> Method:
    def apply(model: nn.Module, **options: Any) -> None:
        r, act = check_options(method, options, model.config.d_model)
        wrap(model, method, find_targets(model, list(PLACES[method])), r, act)

    def save(model: nn.Module, names: ModuleNames) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        modules = bottleneck_modules(model, method)
        first = next(iter(modules.values()))
        tensors = {f"{n}.{s}": m.get_parameter(s) for n, m in modules.items() for s in SUFFIXES}
        return tensors, {"r": first.r, "non_linearity": first.non_linearity, "target_modules": sorted(modules)}

    def load(model: nn.Module, cfg: dict[str, Any], state: dict[str, torch.Tensor], names: ModuleNames,
             where: str) -> None:
        r, act = check_options(method, {k: cfg[k] for k in OPTIONS if k in cfg}, model.config.d_model)
        targets = _load_targets(model, cfg, state, where, r)
        wrap(model, method, targets, r, act)
        modules = bottleneck_modules(model, method)
        with torch.no_grad():
            for key, tensor in state.items():
                name, _, suffix = key.partition(".adapter_")
                modules[name].get_parameter("adapter_" + suffix).copy_(tensor)

    def describe(cfg: dict[str, Any], shapes: dict[str, list[int]]) -> dict[str, Any]:
        return {"r": cfg.get("r"), "non_linearity": cfg.get("non_linearity"),
                "modules": module_count(shapes, ".adapter_")}

    return Method(name=method, peft_type=None, module_types=(CLASSES[method],), apply=apply, save=save, load=load,
                  describe=describe, merge=None, title=f"{method.capitalize()} bottleneck")


def _load_targets(model: nn.Module, cfg: dict[str, Any], state: dict[str, torch.Tensor], where: str,
                  r: int) -> list[str]:
    """The modules the saved tensors adapt, each checked against this base by name and shape."""
    targets = list(cfg.get("target_modules") or [])
    want = set()
    for name in targets:
        try:
            base = model.get_submodule(name)
        except AttributeError:
            base = None
        if not isinstance(base, nn.Linear):
            leaf = name.rsplit(".", 1)[-1]
            like = next((n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(leaf)), None)
            raise LlmzooError(f"{where}: adapter module {name!r} has no counterpart in this {model.config.family} "
                              f"base{f' (whose layers are named like {like!r})' if like else ''}; "
                              f"an adapter for another model?")
        d = base.out_features
        shapes = {"adapter_down.weight": (r, d), "adapter_down.bias": (r,), "adapter_up.weight": (d, r),
                  "adapter_up.bias": (d,)}
        for suffix, shape in shapes.items():
            key = f"{name}.{suffix}"
            want.add(key)
            if key not in state:
                raise LlmzooError(f"{where}: adapter tensor {key!r} is missing")
            if tuple(state[key].shape) != shape:
                raise LlmzooError(f"{where}: adapter tensor {key} has shape {tuple(state[key].shape)} but this "
                                  f"base's {name} (width {d}) with r={r} needs {shape} (an adapter for another model?)")
    extra = sorted(set(state) - want)
    if extra:
        raise LlmzooError(f"{where}: tensor {extra[0]!r} belongs to no module in the config's target_modules")
    if not targets:
        raise LlmzooError(f"{where}: the adapter config lists no target_modules")
    return targets


register(make_method("houlsby"))
register(make_method("pfeiffer"))
