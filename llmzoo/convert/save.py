"""Writing a model to disk: an HF checkpoint directory where a transformers layout expresses the
model, llmzoo's own directory (llmzoo.convert.native) where none does, or a GGUF file.

Everything that can refuse (no layout for this config, a parameter the key map does not know) is
decided before anything is written, and a write that fails part-way removes the directory it
created: a failed save never leaves an empty or half-written model directory behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.checkpoint import write_safetensors
from llmzoo.config import ModelConfig
from llmzoo.convert.hf import Family, zoo_to_hf
from llmzoo.convert.native import native_config, unique_state
from llmzoo.convert.native_kinds import STACK, kind_of
from llmzoo.convert.round_trip import check_round_trip
from llmzoo.errors import CheckpointError, LlmzooError
from llmzoo.models.clip_config import CLIPConfig

LLMZOO_CONFIG = "llmzoo_config.json"
FORMATS = ("auto", "hf", "llmzoo", "gguf")


@dataclass(frozen=True)
class Saved:
    path: Path  # the directory (or the .gguf file) written
    format: str  # "hf", "llmzoo" or "gguf"
    note: str | None = None  # with format="auto": why the model went to llmzoo's format instead of HF's


def save_model(model: nn.Module, directory: str | Path, format: str = "auto", tokenizer: Any = None,
               gguf_type: str = "f32", gguf_file: str | Path | None = None) -> Saved:
    """Write `model` (and `tokenizer`, if given) under `directory`; see `llmzoo.save`.

    format="gguf": `gguf_type` is "f32", "f16", "bf16" or a llama.cpp quantization ("q8_0", "q4_0",
    "q4_1", "q4_k_m"); the file is `gguf_file` if given, else DIRECTORY/NAME.gguf. The tokenizer
    (the one given, else the one of the source the model was loaded from) goes into the file's
    tokenizer.ggml.* metadata, so llama.cpp can run the file."""
    if format not in FORMATS:
        raise LlmzooError(f"unknown save format {format!r}; use one of {', '.join(FORMATS)}")
    config = getattr(model, "config", None)
    composite = isinstance(config, CLIPConfig)  # two towers: its family's config.json carries all of it
    if composite and format not in ("auto", "hf"):
        raise CheckpointError(f"a CLIP model is saved in the transformers layout only; use format='hf', not {format!r}")
    if not isinstance(config, ModelConfig) and not composite:
        raise LlmzooError(f"cannot save a {type(model).__name__}: it has no llmzoo ModelConfig (.config); "
                          f"save models built by llmzoo.build_model or loaded by llmzoo.load")
    out = Path(directory).expanduser()
    if out.exists() and not out.is_dir():
        raise LlmzooError(f"cannot save to {out}: it is a file, not a directory")
    note = hf_config = state = None
    if format in ("auto", "hf", "gguf"):
        try:
            hf_config, state = hf_export(model)
        except LlmzooError as refused:
            if composite:
                raise
            if format != "auto":
                raise CheckpointError(f"{refused}; save with format='llmzoo' (`--format llmzoo`), llmzoo's own "
                                      f"layout, instead") from None
            hf_config = state = None
            note = (f"no transformers layout for this model ({refused}); saved in llmzoo's own format, "
                    f"which llmzoo.load reads and transformers does not")
    if format == "gguf":
        from llmzoo.convert.gguf import write_gguf
        from llmzoo.convert.gguf_quants import file_type, is_quantized

        quantized = is_quantized(file_type(gguf_type).default)  # an unknown type fails before anything is written
        if tokenizer is None:
            tokenizer = source_tokenizer(model)
        metadata = gguf_tokenizer_metadata(tokenizer, hf_config["vocab_size"]) if tokenizer is not None else {}
        metadata.setdefault("general.name", config.name)
        if gguf_file is not None:
            path = Path(gguf_file).expanduser()
            out = path.parent
        else:
            suffix = f"-{gguf_type.upper()}" if quantized else ""  # llama.cpp's naming: NAME-Q4_K_M.gguf
            path = out / f"{config.name.replace('/', '_')}{suffix}.gguf"
        _write_into(out, lambda d: write_gguf(hf_config, state, path, tokenizer_metadata=metadata, dtype=gguf_type))
        return Saved(path, "gguf")
    if state is None or format == "llmzoo":
        files = native_config(model), unique_state(model)
        kind = "llmzoo"
    else:
        files = hf_config, state
        kind = "hf"

    def write(d: Path) -> None:
        write_safetensors(files[1], d / "model.safetensors")
        (d / "config.json").write_text(json.dumps(files[0], indent=2) + "\n")
        if not composite:  # llmzoo reloads the exact ModelConfig from either layout
            config.to_json(d / LLMZOO_CONFIG)
        if tokenizer is not None:
            tokenizer.save(d)

    _write_into(out, write)
    return Saved(out, kind, note)


def source_tokenizer(model: nn.Module) -> Any:
    """The tokenizer of the source `model` was loaded from, if it has a readable one."""
    source = getattr(model, "tokenizer_source", None)
    if not source:
        return None
    from llmzoo.tokenizer import load_tokenizer

    try:
        return load_tokenizer(source)
    except LlmzooError:
        return None


def gguf_tokenizer_metadata(tokenizer: Any, vocab_size: int) -> dict[str, Any]:
    """The tokenizer.* GGUF keys for `tokenizer`. One read from a GGUF file keeps that file's own keys
    (every one llama.cpp's converter wrote, e.g. named chat templates); any other is translated by
    llmzoo.convert.gguf_tokenizer."""
    from llmzoo.convert.gguf_tokenizer import tokenizer_metadata

    source = Path(str(getattr(tokenizer, "source", None) or ""))
    if source.suffix == ".gguf" and source.is_file():
        from llmzoo.convert.gguf_format import GGUFFile

        carried = {k: v for k, v in GGUFFile(source).metadata.items() if k.startswith("tokenizer.")}
        if len(carried.get("tokenizer.ggml.tokens") or ()) == vocab_size:
            return carried
    return tokenizer_metadata(tokenizer, vocab_size=vocab_size)


def hf_export(model: nn.Module) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """config.json and tensors of `model` in its family's transformers layout; LlmzooError when the
    model has no such layout (a pretraining wrapper, a config field the layout cannot express)."""
    kind = kind_of(model)
    if kind is not STACK:
        raise CheckpointError(f"{kind.description} has no transformers class")
    config: ModelConfig = model.config
    family, hf_config = hf_config_for(config)
    state = zoo_to_hf(family, config, model.state_dict())
    hf_config["torch_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    return hf_config, state


def hf_config_for(config: ModelConfig) -> tuple[Family, dict[str, Any]]:
    """The converter family and config.json of `config` in the transformers layout; CheckpointError
    when that layout cannot express it (what `llmzoo show` reports as "HF conversion")."""
    if config.position_2d:  # no transformers class has GLM's second position table (GLM-10B was remote code)
        raise CheckpointError("GLM's 2D positions (position_2d=True) have no transformers layout")
    family = family_for_config(config)
    hf_config = family.config_to_hf(config)
    check_round_trip(config, family.name, family.config_from_hf(dict(hf_config)))
    return family, hf_config


def family_for_config(config: ModelConfig) -> Family:
    """The converter family a config is saved with; a hand-made config ("custom") is written in the
    LLaMA layout when it is one (LLaMA's config_to_hf refuses any field that layout cannot express)."""
    from llmzoo.convert.families import family_by_name

    return family_by_name(config.family if config.family != "custom" else "llama")


def _write_into(out: Path, write: Callable[[Path], None]) -> None:
    """mkdir `out` and run `write(out)`; on failure remove the folders this call created."""
    created = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write(out)
    except BaseException as e:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(e, OSError):
            raise LlmzooError(f"cannot write {out}: {e.strerror or e}") from None
        raise
