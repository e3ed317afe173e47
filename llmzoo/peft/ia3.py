"""(IA)3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
In-Context Learning"): learned vectors that rescale the attention keys and values and the
feed-forward's intermediate activations, l_k * k, l_v * v, l_ff * (gelu(W_1 x)), all starting at 1.

    llmzoo.peft.apply(model, "ia3")   # k_proj, v_proj and down_proj's input, as in the paper
    llmzoo.peft.apply(model, "ia3", target_modules=["k_proj", "v_proj", "o_proj", "down_proj"],
                      feedforward_modules=["o_proj", "down_proj"])   # peft's BERT default

A targeted layer's output is scaled (a vector of out_features, stored (out, 1)); a "feedforward"
layer's input is scaled instead (in_features, stored (1, in)): scaling down_proj's input is scaling
the intermediate activations. Saved in peft's IA3 format (`base_model.model.<module>.ia3_l`).
Mergeable: the vector folds into the weight's rows (and the bias) or columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.methods import Method, register
from llmzoo.peft.module_io import PREFIX, check_no_options, group_tensors, leaf_targets, linear_or_error, module_count
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.targets import find_targets, matches

OPTIONS = ("target_modules", "feedforward_modules")
DEFAULT_TARGETS, DEFAULT_FEEDFORWARD = ("k_proj", "v_proj", "down_proj"), ("down_proj",)
UNSUPPORTED_OPTIONS = {"fan_in_fan_out": False, "modules_to_save": None}


class IA3Linear(nn.Module):
    def __init__(self, base: nn.Linear, feedforward: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias  # the base's own Parameters, names kept
        self.feedforward = feedforward
        shape = (1, self.in_features) if feedforward else (self.out_features, 1)  # peft's layout
        self.ia3_l = nn.Parameter(torch.ones(shape, device=base.weight.device, dtype=base.weight.dtype))
        self.disabled = False
        self.train(base.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.disabled:
            return F.linear(x, self.weight, self.bias)
        scale = self.ia3_l.flatten()
        if self.feedforward:
            return F.linear(x * scale, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias) * scale  # the bias is scaled too, as in peft

    def merged(self) -> nn.Linear:
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.weight * self.ia3_l)  # (out, in) * (1, in) or (out, 1)
            if self.bias is not None:
                linear.bias.copy_(self.bias if self.feedforward else self.bias * self.ia3_l.flatten())
        return linear.train(self.training)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, (IA)3 scaling its {'input' if self.feedforward else 'output'}"


def apply_ia3(model: nn.Module, **options: Any) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown (IA)3 option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    names = find_targets(model, options.get("target_modules", DEFAULT_TARGETS))
    feedforward = options.get("feedforward_modules", DEFAULT_FEEDFORWARD)
    if not isinstance(feedforward, str):
        feedforward = list(feedforward)
        stray = [f for f in feedforward if not any(matches(n, [f]) for n in names)]
        if stray:
            raise LlmzooError(f"feedforward_modules {', '.join(map(repr, stray))} are not among the targeted modules; "
                              f"every feedforward module must also be in target_modules")
    wrap(model, {name: matches(name, feedforward) for name in names})


def wrap(model: nn.Module, feedforward: dict[str, bool]) -> None:
    for name, ff in feedforward.items():
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, IA3Linear(getattr(owner, attr), ff))


def ia3_modules(model: nn.Module) -> dict[str, IA3Linear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, IA3Linear)}


def merge_ia3(model: nn.Module) -> None:
    for name, module in ia3_modules(model).items():
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, module.merged())


def save_ia3(model: nn.Module, names: ModuleNames) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    modules = ia3_modules(model)
    hf = {name: names.to_hf(name) for name in modules}
    tensors = {PREFIX + hf[name] + ".ia3_l": m.ia3_l for name, m in modules.items()}
    targets = leaf_targets(model, hf, names)
    ff_paths = sorted(hf[n] for n, m in modules.items() if m.feedforward)
    ff = _feedforward_leaves(list(hf.values()), ff_paths)
    if ff is None or targets == sorted(hf.values()):  # peft wants feedforward_modules within target_modules
        targets, ff = sorted(hf.values()), ff_paths
    return tensors, {"target_modules": targets, "feedforward_modules": ff, "init_ia3_weights": True,
                     "fan_in_fan_out": False, "modules_to_save": None}


def _feedforward_leaves(targeted: Sequence[str], ff_paths: Sequence[str]) -> list[str] | None:
    """Leaf names selecting exactly the feedforward modules among the targeted ones by peft's rule
    (a targeted path ending with the name), else None."""
    leaves = sorted({p.rsplit(".", 1)[-1] for p in ff_paths})
    chosen = {p for p in targeted if any(p.endswith(leaf) for leaf in leaves)}
    return leaves if chosen == set(ff_paths) else None


def load_ia3(model: nn.Module, cfg: dict[str, Any], state: dict[str, torch.Tensor], names: ModuleNames,
             where: str) -> None:
    check_no_options(cfg, UNSUPPORTED_OPTIONS, where)
    grouped = group_tensors(state, ("ia3_l",), where, "(IA)3")
    feedforward: dict[str, bool] = {}
    for hf_name, tensors in grouped.items():
        zoo_name, base = linear_or_error(model, names, hf_name, cfg, "(IA)3")
        shape = tuple(tensors["ia3_l"].shape)
        if shape not in ((1, base.in_features), (base.out_features, 1)):
            raise LlmzooError(f"adapter tensor {hf_name}.ia3_l has shape {shape} but this base's {hf_name} "
                              f"({base.in_features} -> {base.out_features}) needs {(base.out_features, 1)} or, "
                              f"as a feedforward module, {(1, base.in_features)} (an adapter for another model?)")
        feedforward[zoo_name] = shape == (1, base.in_features) and shape != (base.out_features, 1)
    wrap(model, feedforward)
    modules = ia3_modules(model)
    with torch.no_grad():
        for hf_name, tensors in grouped.items():
            modules[names.to_zoo(hf_name)].ia3_l.copy_(tensors["ia3_l"])


def describe_ia3(cfg: dict[str, Any], shapes: dict[str, list[int]]) -> dict[str, Any]:
    ff = cfg.get("feedforward_modules")
    return {"feedforward_modules": ff if isinstance(ff, str) or ff is None else sorted(ff),
            "modules": module_count(shapes, ".ia3_l")}


register(Method(name="ia3", peft_type="IA3", module_types=(IA3Linear,), apply=apply_ia3, save=save_ia3,
                load=load_ia3, describe=describe_ia3, merge=merge_ia3, title="(IA)3"))
