"""peft's on-disk adapter format: adapter_config.json + adapter_model.safetensors.

Tensors are named as peft names them, by the module's path in the transformers model:
`base_model.model.<hf module>.lora_A.weight`, `.lora_B.weight`, and DoRA's `.lora_magnitude_vector`
(llmzoo.peft.names maps those paths to llmzoo's). Only safetensors is read: a pickle
(adapter_model.bin) can run code when loaded.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.checkpoint import write_safetensors
from llmzoo.errors import LlmzooError
from llmzoo.peft.lora import LoraLinear, LoraSpec
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.targets import UNSUPPORTED
from llmzoo.peft.transform import apply_lora, lora_modules, lora_spec

CONFIG, WEIGHTS, PICKLE = "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"
PREFIX = "base_model.model."
SUFFIXES = ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector")
# peft options llmzoo does not implement: loading them as if at their default would compute something else
DEFAULTS = {"bias": "none", "fan_in_fan_out": False, "lora_bias": False, "modules_to_save": None,
            "layer_replication": None, "use_qalora": False, "target_parameters": None,
            "trainable_token_indices": None, "alora_invocation_tokens": None, "use_bdlora": None}
TASK_TYPES = {"decoder": "CAUSAL_LM", "encoder_decoder": "SEQ_2_SEQ_LM", "seq_cls": "SEQ_CLS",
              "token_cls": "TOKEN_CLS", "qa": "QUESTION_ANS", "none": "FEATURE_EXTRACTION"}


def read_adapter_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG
    if not path.is_file():
        raise LlmzooError(f"{directory} is not a peft adapter directory: it has no {CONFIG}")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LlmzooError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})") from None
    kind = cfg.get("peft_type")
    if kind != "LORA":
        raise LlmzooError(f"{directory} holds a peft {kind} adapter; llmzoo loads LORA adapters (LoRA, rsLoRA, DoRA) only")
    for field, default in DEFAULTS.items():
        if cfg.get(field, default) not in (default, [], {}) and not (field == "bias" and cfg[field] is None):
            raise LlmzooError(f"{path}: {field}={cfg[field]!r} is not supported by llmzoo (only {default!r})")
    return cfg


def read_adapter_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / WEIGHTS).is_file():
        if (directory / PICKLE).exists():
            raise LlmzooError(f"{directory / PICKLE} is a pickle, which can run code when loaded; llmzoo reads "
                              f"{WEIGHTS} only (re-save the adapter with peft's safe_serialization=True)")
        raise LlmzooError(f"{directory} has no {WEIGHTS}")
    return load_file(str(directory / WEIGHTS))


def load_adapter(model: nn.Module, directory: str | Path) -> nn.Module:
    """Wrap `model`'s modules as the adapter in `directory` says and load its tensors (in place)."""
    cfg = read_adapter_config(directory)
    grouped = _group(read_adapter_tensors(directory), directory)
    names = ModuleNames(model.config)
    specs: dict[str, LoraSpec] = {}
    for hf_name, tensors in grouped.items():
        zoo_name = names.to_zoo(hf_name)
        base = _linear(model, zoo_name)
        if base is None:
            raise LlmzooError(f"adapter module {hf_name!r} has no counterpart in this {model.config.family} base"
                              f"{_example_name(model, names)}; the adapter was made for "
                              f"{cfg.get('base_model_name_or_path') or 'another model'}")
        if zoo_name.rsplit(".", 1)[-1] in UNSUPPORTED:
            raise LlmzooError(f"adapter module {hf_name!r}: LoRA on {zoo_name} is not supported yet "
                              f"(llmzoo's fused loss reads its weight directly)")
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
    return model


def _group(state: dict[str, torch.Tensor], directory: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """{hf module path: {suffix: tensor}}; a tensor llmzoo would not use is an error, not ignored."""
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        suffix = next((s for s in SUFFIXES if key.endswith("." + s)), None)
        if not key.startswith(PREFIX) or suffix is None:
            raise LlmzooError(f"{directory}: tensor {key!r} is not a LoRA tensor llmzoo loads "
                              f"(expected {PREFIX}<module>.{{{','.join(SUFFIXES)}}})")
        grouped.setdefault(key[len(PREFIX): -len(suffix) - 1], {})[suffix] = tensor
    if not grouped:
        raise LlmzooError(f"{directory}: {WEIGHTS} holds no tensors")
    return grouped


def _linear(model: nn.Module, name: str | None) -> nn.Linear | None:
    if name is None:
        return None
    try:
        module = model.get_submodule(name)
    except AttributeError:
        return None
    return module if isinstance(module, nn.Linear) else None


def _example_name(model: nn.Module, names: ModuleNames) -> str:
    """How this base names its linear layers, e.g. " (whose layers are named like 'encoder.block.0...q')"."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            try:
                return f" (whose layers are named like {names.to_hf(name)!r})"
            except LlmzooError:
                continue
    return ""


def _check_shapes(hf_name: str, tensors: dict[str, torch.Tensor], base: nn.Linear, dora: bool) -> None:
    need = ("lora_A.weight", "lora_B.weight") + (("lora_magnitude_vector",) if dora else ())
    missing = [s for s in need if s not in tensors]
    if missing:
        raise LlmzooError(f"adapter module {hf_name!r} lacks {missing[0]}")
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


def save_adapter(model: nn.Module, out_dir: str | Path, base_model_name_or_path: str | None = None) -> Path:
    """Write `model`'s LoRA adapter in peft's format (peft's PeftModel.from_pretrained loads it)."""
    modules = lora_modules(model)
    if not modules:
        raise LlmzooError("this model has no LoRA adapter to save; llmzoo.peft.apply(model, 'lora', ...) first")
    names = ModuleNames(model.config)
    hf = {name: names.to_hf(name) for name in modules}
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        prefix = PREFIX + hf[name]
        tensors[prefix + ".lora_A.weight"] = module.lora_A.weight
        tensors[prefix + ".lora_B.weight"] = module.lora_B.weight
        if module.lora_magnitude_vector is not None:
            tensors[prefix + ".lora_magnitude_vector"] = module.lora_magnitude_vector
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(tensors, out / WEIGHTS)
    config = _config(model, modules, hf, names, base_model_name_or_path)
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return out


def _config(model: nn.Module, modules: dict[str, LoraLinear], hf: dict[str, str], names: ModuleNames,
            base: str | None) -> dict[str, Any]:
    specs = {name: m.spec for name, m in modules.items()}
    shared = {(s.dropout, s.use_rslora, s.use_dora) for s in specs.values()}
    if len(shared) > 1:
        raise LlmzooError("peft's format has one dropout/rsLoRA/DoRA setting per adapter; these modules differ")
    dropout, rslora, dora = shared.pop()
    r = Counter(s.r for s in specs.values()).most_common(1)[0][0]
    alpha = Counter(s.alpha for s in specs.values()).most_common(1)[0][0]
    c = model.config
    return {
        "peft_type": "LORA", "task_type": TASK_TYPES.get(c.arch) or TASK_TYPES.get(c.head),
        "base_model_name_or_path": base or getattr(model, "source", None) or c.name,
        "r": r, "lora_alpha": alpha, "lora_dropout": dropout, "use_rslora": rslora, "use_dora": dora,
        "target_modules": _targets(model, hf, names),
        "rank_pattern": {re.escape(hf[n]): s.r for n, s in specs.items() if s.r != r},
        "alpha_pattern": {re.escape(hf[n]): s.alpha for n, s in specs.items() if s.alpha != alpha},
        "bias": "none", "fan_in_fan_out": False, "modules_to_save": None, "init_lora_weights": True,
        "inference_mode": True,
    }


def _targets(model: nn.Module, hf: dict[str, str], names: ModuleNames) -> list[str]:
    """Leaf names ("q_proj") when they select exactly the adapted modules, else full paths,
    so peft wraps the same modules llmzoo did."""
    leaves = {h.rsplit(".", 1)[-1] for h in hf.values()}
    same_leaf = set()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, LoraLinear)) and name.rsplit(".", 1)[-1] != "lm_head":
            try:
                path = names.to_hf(name)
            except LlmzooError:
                continue
            if path.rsplit(".", 1)[-1] in leaves:
                same_leaf.add(path)
    return sorted(leaves) if same_leaf == set(hf.values()) else sorted(hf.values())


def describe_adapter(directory: str | Path) -> dict[str, Any]:
    """What `llmzoo adapter info` prints, read from the config and the safetensors header alone."""
    from safetensors import safe_open

    cfg = read_adapter_config(directory)
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        read_adapter_tensors(directory)  # raises the one-line reason (missing, or a pickle)
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    modules = {k[len(PREFIX):].rsplit(".lora_", 1)[0] for k in shapes if k.startswith(PREFIX)}
    method = "DoRA" if cfg.get("use_dora") else "rsLoRA" if cfg.get("use_rslora") else "LoRA"
    targets = cfg.get("target_modules")
    return {
        "method": method, "r": cfg.get("r"), "lora_alpha": cfg.get("lora_alpha"),
        "lora_dropout": cfg.get("lora_dropout", 0.0),
        "target_modules": targets if isinstance(targets, str) else sorted(targets or []),
        "rank_pattern": cfg.get("rank_pattern") or {}, "alpha_pattern": cfg.get("alpha_pattern") or {},
        "modules": len(modules), "trainable_parameters": sum(_numel(s) for s in shapes.values()),
        "base_model_name_or_path": cfg.get("base_model_name_or_path"), "task_type": cfg.get("task_type"),
    }


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
