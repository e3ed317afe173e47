"""The Python API: load and save models from every format people have.

    model = llmzoo.load("smollm2-135m-instruct")      # zoo name with packaged weights
    model = llmzoo.load("path/to/hf_checkpoint_dir")  # config.json + safetensors
    model = llmzoo.load("model.gguf")                 # llama.cpp GGUF
    model = llmzoo.load("runs/glm/model")             # llmzoo's own directory (no HF layout)
    llmzoo.save(model, "out_dir")                     # a directory transformers loads (format="llmzoo": llmzoo's own)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.checkpoint import read_safetensors_dir
from llmzoo.config import ModelConfig
from llmzoo.convert.families import family_for_model_type
from llmzoo.convert.hf import hf_to_zoo
from llmzoo.convert.native import is_native, read_native
from llmzoo.convert.save import LLMZOO_CONFIG, source_tokenizer
from llmzoo.errors import CheckpointError, LlmzooError
from llmzoo.hub import PACKAGED_WEIGHTS, resolve_source
from llmzoo.models.build import build_model

def load(source: str | Path, dtype: torch.dtype | None = None, *, adapter: str | Path | None = None,
         quant: str | None = None) -> nn.Module:
    """Load a model; `model.config` is its ModelConfig, `model(ids).logits` its (B, T, V) logits.
    `model.tokenizer_source` names where its tokenizer is (None if the source has none), so
    `llmzoo.save(model, dir)` writes the tokenizer beside the weights. adapter: a peft-format
    adapter directory (adapter_config.json + adapter_model.safetensors, written by peft or by
    llmzoo.peft.save_adapter) applied on top of the base (llmzoo.peft).
    quant (llmzoo.quant; README "Quantized weights"): None keeps float weights; "gguf" runs a .gguf
    source's own quantized blocks in the matmuls instead of dequantizing them; "int8" (per output
    row) and "int4" (groups of 32 inputs) quantize the linear layers of any model. Layers an adapter
    wraps stay float; `dtype` then applies to the rest (norms, embeddings, biases)."""
    from llmzoo.quant import check_quant

    method = check_quant(quant)
    if adapter is not None:  # a directory llmzoo cannot apply fails before the base is read
        from llmzoo.peft import read_adapter_config

        read_adapter_config(adapter)
    gguf_file = _gguf_file(source) if method == "gguf" else None  # a non-GGUF source fails before reading
    # quant="gguf": the layers built from the file's blocks are not read as fp32 first (an adapter
    # needs the float weights of the layers it wraps, so with one everything is read)
    model = _load_base(source, dtype if method is None else None, gguf_blocks=method == "gguf" and adapter is None)
    model.source = str(source)  # what save_adapter records as base_model_name_or_path
    if adapter is not None:
        from llmzoo.peft import load_adapter

        load_adapter(model, adapter)
    if method is not None:
        from llmzoo.quant import quantize_from_gguf, quantize_model

        quantize_from_gguf(model, gguf_file) if method == "gguf" else quantize_model(model, method)
        if dtype is not None:
            model.to(dtype)
    return model


def _gguf_file(source: str | Path) -> Path:
    """The .gguf file `source` names (a file, a directory holding one, a zoo name packaged as GGUF)."""
    path = _resolve_or_zoo_config(source)
    if path.is_dir() and not (path / "config.json").exists() and len(ggufs := sorted(path.glob("*.gguf"))) == 1:
        path = ggufs[0]
    if not (path.is_file() and path.suffix == ".gguf"):
        raise LlmzooError(f"quant='gguf' runs a GGUF file's own quantized blocks, but {source} is not a .gguf file; "
                          f"use quant='int8' or quant='int4' to quantize its weights")
    return path


def _load_base(source: str | Path, dtype: torch.dtype | None, gguf_blocks: bool = False) -> nn.Module:
    if not str(source).strip():  # Path("") is the current directory: never load whatever lies there
        raise LlmzooError("no model source given; pass a zoo name, an HF or llmzoo directory, or a .gguf file")
    path = _resolve_or_zoo_config(source)
    if str(source).lower() in PACKAGED_WEIGHTS:  # name the model as the user did, not by its file
        model = _load_base(path, dtype, gguf_blocks)
        model.config = model.config.replace(name=str(source).lower())
        return model
    if path.is_file() and path.suffix == ".gguf":
        from llmzoo.convert.gguf import read_gguf
        from llmzoo.quant.apply import built_from_blocks

        ckpt = read_gguf(path, placeholder=built_from_blocks if gguf_blocks else None)
        model = _from_hf_state(ckpt.hf_config, ckpt.state_dict, dtype, override=None)
        model.tokenizer_source = str(path)  # GGUF files carry their vocabulary
        return model
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.exists():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return _load_base(ggufs[0], dtype, gguf_blocks)
            if ggufs:
                raise CheckpointError(f"{path} holds {len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs[:3])}"
                                      f"{', ...' if len(ggufs) > 3 else ''}); name the one to load")
            raise CheckpointError(f"{path} has no config.json; expected an HF checkpoint or llmzoo directory")
        hf = _read_json(config_file)
        override = ModelConfig.from_json(path / LLMZOO_CONFIG) if (path / LLMZOO_CONFIG).exists() else None
        if is_native(hf):
            model = read_native(path, hf, override, dtype)
        else:
            model = _from_hf_state(hf, read_safetensors_dir(path), dtype, override)
        model.tokenizer_source = str(path) if _has_tokenizer(path) else None
        return model
    raise CheckpointError(f"cannot load {path}: expected a directory, a .gguf file or a zoo name")


def _has_tokenizer(directory: Path) -> bool:
    return any((directory / name).exists() for name in ("tokenizer.json", "tokenizer.model", "vocab.txt"))


def _resolve_or_zoo_config(source: str | Path) -> Path:
    try:
        return resolve_source(source)
    except LlmzooError as not_found:
        # A catalog name whose weights are not available offline: say so, rather than
        # silently building a randomly initialised model of possibly 100B+ parameters.
        from llmzoo.models.zoo import get_card

        try:
            card = get_card(str(source))  # aliases too: "gpt2" is gpt-2-117m
        except LlmzooError:
            raise not_found from None
        name = card.name
        if name in PACKAGED_WEIGHTS:  # an alias ("minilm") of a model whose weights do ship
            return resolve_source(name)
        from llmzoo.models.build import BUILDERS

        if card.config is None and getattr(card.composite, "arch", None) in BUILDERS:  # CLIP, ERNIE 3.0: several stacks
            raise LlmzooError(
                f"{name!r} is in the zoo but its weights are not available offline; see `llmzoo show {name}`, or "
                f"build it with random weights: from llmzoo.models.zoo import get_card; "
                f"model = llmzoo.build_model(get_card({name!r}).composite)") from None
        if card.config is None:
            raise LlmzooError(f"{name!r} is in the zoo as a model card only: it has no published architecture, "
                              f"so there is nothing to build or load; see `llmzoo show {name}`") from None
        # The snippet must run as printed after a bare `import llmzoo` (llmzoo.models is not an attribute
        # until imported), so it imports get_config itself; tests/test_suggestions.py executes it.
        raise LlmzooError(
            f"{name!r} is in the zoo but its weights are not available offline; see `llmzoo show {name}`, "
            f"or build it with random weights: from llmzoo.models.zoo import get_config; "
            f"model = llmzoo.build_model(get_config({name!r}))"
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})") from None


def _from_hf_state(hf: dict[str, Any], state: dict[str, torch.Tensor], dtype: torch.dtype | None,
                   override: ModelConfig | None) -> nn.Module:
    family = family_for_model_type(hf.get("model_type"))
    if family.check is not None:
        family.check(hf)
    if family.amend_from_weights is not None and override is None:
        hf = family.amend_from_weights(hf, {k: tuple(v.shape) for k, v in state.items()})
    config = override or family.config_from_hf(hf)
    zoo_state = hf_to_zoo(family, config, state)
    model = build_model(config, device="meta")
    expected = model.state_dict()
    if config.tie_embeddings:
        zoo_state.pop("lm_head.weight", None)
    missing = [k for k in expected if k not in zoo_state and not (config.tie_embeddings and k == "lm_head.weight")]
    if missing:
        raise CheckpointError(f"checkpoint lacks {len(missing)} tensor(s) the {family.name} config needs, e.g. {missing[0]!r}")
    for key, tensor in zoo_state.items():
        want = expected[key].shape if key in expected else None
        if want is not None and tuple(tensor.shape) != tuple(want):
            raise CheckpointError(f"tensor {key} has shape {tuple(tensor.shape)} but the config implies {tuple(want)}")
    target = dtype or torch.float32
    zoo_state = {k: v.to(target) if v.is_floating_point() else v for k, v in zoo_state.items()}
    model.load_state_dict(zoo_state, strict=False, assign=True)
    _materialise_buffers(model)
    if config.tie_embeddings and getattr(model, "lm_head", None) is not None and hasattr(model, "embeddings"):
        model.lm_head.weight = model.embeddings.tokens.weight
    return model.eval()


def _materialise_buffers(model: nn.Module) -> None:
    """Non-persistent buffers (RoPE frequencies, ALiBi slopes) were created on the meta device;
    every module that owns such buffers recomputes them in `init_buffers()`."""
    with torch.device("cpu"):
        for module in model.modules():
            if hasattr(module, "init_buffers"):
                module.init_buffers()
    leftover = [n for n, b in model.named_buffers() if b.is_meta]
    if leftover:
        raise CheckpointError(f"internal: buffer {leftover[0]} was not materialised")


def save(model: nn.Module, directory: str | Path, format: str = "hf", tokenizer=None) -> Path:
    """Write `model` to `directory` and return the path written.

    format="hf": an HF checkpoint directory (config.json + model.safetensors) that `transformers`
    loads; refuses (naming the field) a model its family's layout cannot express. "llmzoo": llmzoo's
    own directory, for any model llmzoo builds (llmzoo.load reads it, transformers does not). "auto":
    "hf" where it can, else "llmzoo" with a warning saying why. "gguf": DIRECTORY/NAME.gguf. Both
    directory layouts carry llmzoo_config.json, so llmzoo reloads the exact ModelConfig. The tokenizer
    is written too: the one given, or the one of the source the model was loaded from."""
    import warnings

    from llmzoo.convert.save import save_model
    from llmzoo.peft.methods import method_of

    adapter = method_of(model)
    if adapter is not None:  # adapter tensors fit no model layout
        raise LlmzooError(f"this model carries a {adapter.display} adapter: llmzoo.peft.merge(model) before saving "
                          f"it, or write the adapter alone with llmzoo.peft.save_adapter(model, dir)")
    if tokenizer is None and format != "gguf":
        tokenizer = source_tokenizer(model)
    saved = save_model(model, directory, format=format, tokenizer=tokenizer)
    if saved.note:
        warnings.warn(saved.note, stacklevel=2)
    return saved.path


