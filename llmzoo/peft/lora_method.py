"""LoRA, rsLoRA, DoRA and QLoRA as a registered method (llmzoo.peft.methods), in peft's LORA format.

Options of `llmzoo.peft.apply(model, "lora", ...)`: target_modules, r, lora_alpha, lora_dropout,
use_rslora, use_dora, and quantize="nf4" for QLoRA (Dettmers et al. 2023: the frozen base weights
of the targeted layers stored as NF4, llmzoo.peft.nf4; `apply(model, "qlora", ...)` is the same with
quantize="nf4"). The adapter is plain LoRA either way, so a QLoRA adapter loads onto an unquantized
base (and into peft) unchanged.

Which modules to wrap on load, and each one's rank, come from the tensors themselves (peft's
target_modules may be a regex, or name modules the saved layers do not cover); alpha from
lora_alpha and alpha_pattern.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.lora import LoraLinear, LoraSpec
from llmzoo.peft.methods import Method, register
from llmzoo.peft.module_io import PREFIX, check_no_options, group_tensors, leaf_targets, linear_or_error, module_count
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.targets import UNSUPPORTED, find_targets

OPTIONS = ("target_modules", "r", "lora_alpha", "lora_dropout", "use_rslora", "use_dora", "quantize")
SUFFIXES = ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector")
# peft options llmzoo does not implement: loading them as if at their default would compute something else
UNSUPPORTED_OPTIONS = {"bias": "none", "fan_in_fan_out": False, "lora_bias": False, "modules_to_save": None,
                       "layer_replication": None, "use_qalora": False, "target_parameters": None,
                       "trainable_token_indices": None, "alora_invocation_tokens": None, "use_bdlora": None}


def apply_lora_method(model: nn.Module, **options: Any) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown LoRA option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    quantize = options.get("quantize")
    if quantize not in (None, "nf4"):
        raise LlmzooError(f"quantize={quantize!r} is not supported; use quantize='nf4' (QLoRA) or leave it out")
    targets = options.get("target_modules", ("q_proj", "v_proj"))
    spec = lora_spec(options.get("r", 8), options.get("lora_alpha", 8), options.get("lora_dropout", 0.0),
                     options.get("use_rslora", False), options.get("use_dora", False))
    names = find_targets(model, targets)
    if quantize == "nf4":  # QLoRA quantizes every linear layer of the base, targeted or not
        from llmzoo.peft.nf4 import quantize_linears

        quantize_linears(model, [n for n, m in model.named_modules()
                                 if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] not in UNSUPPORTED])
    apply_lora(model, {name: spec for name in names})


def apply_qlora(model: nn.Module, **options: Any) -> None:
    apply_lora_method(model, **{"quantize": "nf4", **options})


def lora_spec(r: Any, alpha: Any, dropout: Any = 0.0, use_rslora: bool = False, use_dora: bool = False) -> LoraSpec:
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise LlmzooError(f"LoRA rank r must be a positive integer, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise LlmzooError(f"lora_alpha must be a positive number, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise LlmzooError(f"lora_dropout must be in [0, 1), got {dropout!r}")
    return LoraSpec(r=r, alpha=alpha, dropout=float(dropout), use_rslora=bool(use_rslora), use_dora=bool(use_dora))


def apply_lora(model: nn.Module, specs: dict[str, LoraSpec]) -> None:
    """Wrap each named linear layer with its spec; freeze everything that is not an adapter."""
    for p in model.parameters():
        p.requires_grad_(False)
    for name, spec in specs.items():
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, LoraLinear(getattr(owner, attr), spec))


def lora_modules(model: nn.Module) -> dict[str, LoraLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLinear)}


def merge_lora(model: nn.Module) -> None:
    """Fold each adapter into its weight; a QLoRA base comes back dequantized (plain nn.Linear throughout)."""
    from llmzoo.peft.nf4 import dequantize_linears

    for name, module in lora_modules(model).items():
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, module.merged())
    dequantize_linears(model)


def save_lora(model: nn.Module, names: ModuleNames) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    modules = lora_modules(model)
    hf = {name: names.to_hf(name) for name in modules}
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        prefix = PREFIX + hf[name]
        tensors[prefix + ".lora_A.weight"] = module.lora_A.weight
        tensors[prefix + ".lora_B.weight"] = module.lora_B.weight
        if module.lora_magnitude_vector is not None:
            tensors[prefix + ".lora_magnitude_vector"] = module.lora_magnitude_vector
    specs = {name: m.spec for name, m in modules.items()}
    shared = {(s.dropout, s.use_rslora, s.use_dora) for s in specs.values()}
    if len(shared) > 1:
        raise LlmzooError("peft's format has one dropout/rsLoRA/DoRA setting per adapter; these modules differ")
    dropout, rslora, dora = shared.pop()
    r = Counter(s.r for s in specs.values()).most_common(1)[0][0]
    alpha = Counter(s.alpha for s in specs.values()).most_common(1)[0][0]
    config = {
        "r": r, "lora_alpha": alpha, "lora_dropout": dropout, "use_rslora": rslora, "use_dora": dora,
        "target_modules": leaf_targets(model, hf, names),
        "rank_pattern": {re.escape(hf[n]): s.r for n, s in specs.items() if s.r != r},
        "alpha_pattern": {re.escape(hf[n]): s.alpha for n, s in specs.items() if s.alpha != alpha},
        "bias": "none", "fan_in_fan_out": False, "modules_to_save": None, "init_lora_weights": True,
    }
    return tensors, config


def load_lora(model: nn.Module, cfg: dict[str, Any], state: dict[str, torch.Tensor], names: ModuleNames,
              where: str) -> None:
    check_no_options(cfg, UNSUPPORTED_OPTIONS, where)
    grouped = group_tensors(state, SUFFIXES, where, "LoRA")
    specs: dict[str, LoraSpec] = {}
    for hf_name, tensors in grouped.items():
        zoo_name, base = linear_or_error(model, names, hf_name, cfg, "LoRA")
        _check_shapes(hf_name, tensors, base, cfg.get("use_dora", False))
        alpha = _pattern_value(cfg.get("alpha_pattern") or {}, hf_name, cfg.get("lora_alpha", 8))
        specs[zoo_name] = lora_spec(tensors["lora_A.weight"].shape[0], alpha, cfg.get("lora_dropout", 0.0),
                                    cfg.get("use_rslora", False), cfg.get("use_dora", False))
    apply_lora(model, specs)
    modules = lora_modules(model)
    with torch.no_grad():
        for hf_name, tensors in grouped.items():
            module = modules[names.to_zoo(hf_name)]
            module.lora_A.weight.copy_(tensors["lora_A.weight"])
            module.lora_B.weight.copy_(tensors["lora_B.weight"])
            if module.lora_magnitude_vector is not None:
                module.lora_magnitude_vector.copy_(tensors["lora_magnitude_vector"])


def _check_shapes(hf_name: str, tensors: dict[str, torch.Tensor], base: nn.Module, dora: bool) -> None:
    need = ("lora_A.weight", "lora_B.weight") + (("lora_magnitude_vector",) if dora else ())
    missing = [s for s in need if s not in tensors]
    if missing:
        raise LlmzooError(f"adapter module {hf_name!r} lacks {missing[0]}")
    if not dora and "lora_magnitude_vector" in tensors:
        raise LlmzooError(f"adapter module {hf_name!r} has a DoRA magnitude vector but its config says use_dora=false")
    r = tensors["lora_A.weight"].shape[0]
    want = {"lora_A.weight": (r, base.in_features), "lora_B.weight": (base.out_features, r),
            "lora_magnitude_vector": (base.out_features,)}
    for suffix, tensor in tensors.items():
        if tuple(tensor.shape) != want[suffix]:
            raise LlmzooError(f"adapter tensor {hf_name}.{suffix} has shape {tuple(tensor.shape)} but this base's "
                              f"{hf_name} ({base.in_features} -> {base.out_features}) needs {want[suffix]} "
                              f"(an adapter for another model?)")


def _pattern_value(patterns: dict[str, Any], hf_name: str, default: Any) -> Any:
    """peft's rank_pattern/alpha_pattern rule: the first key that matches the end of the path."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", hf_name):
            return value
    return default


def describe_lora(cfg: dict[str, Any], shapes: dict[str, list[int]]) -> dict[str, Any]:
    return {
        "method": "DoRA" if cfg.get("use_dora") else "rsLoRA" if cfg.get("use_rslora") else "LoRA",
        "r": cfg.get("r"), "lora_alpha": cfg.get("lora_alpha"), "lora_dropout": cfg.get("lora_dropout", 0.0),
        "rank_pattern": cfg.get("rank_pattern") or {}, "alpha_pattern": cfg.get("alpha_pattern") or {},
        "modules": module_count(shapes, ".lora_"),
    }


register(Method(name="lora", peft_type="LORA", module_types=(LoraLinear,), apply=apply_lora_method, save=save_lora,
                load=load_lora, describe=describe_lora, merge=merge_lora, title="LoRA"))
# QLoRA is LoRA on an NF4 base: same modules, same format; listed only so apply(model, "qlora") works
register(Method(name="qlora", peft_type=None, module_types=(), apply=apply_qlora, save=save_lora,
                load=load_lora, describe=describe_lora, merge=merge_lora, title="QLoRA"))
