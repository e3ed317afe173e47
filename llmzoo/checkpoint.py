"""Reading and writing weight files: safetensors (single or sharded) only, never pickle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmzoo.errors import CheckpointError

INDEX = "model.safetensors.index.json"


def read_safetensors_dir(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of an HF checkpoint directory: model.safetensors or an index of shards."""
    single = directory / "model.safetensors"
    index = directory / INDEX
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index} is not a valid shard index ({e})") from None
        files = sorted(set(weight_map.values()))
    elif single.exists():
        files = [single.name]
    else:
        others = sorted(p.name for p in directory.glob("*.safetensors"))
        if others:
            files = others
        elif list(directory.glob("*.bin")) or list(directory.glob("*.pt")):
            raise CheckpointError(f"{directory} has only pickle weights (.bin/.pt); llmzoo loads safetensors only: "
                                  f"re-save them with transformers' save_pretrained(safe_serialization=True)")
        else:
            raise CheckpointError(f"no model.safetensors in {directory}")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        path = directory / name
        if not path.exists():
            raise CheckpointError(f"shard {name} listed in {INDEX} is missing from {directory}")
        state.update(read_safetensors(path))
    return state


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {reason}") from None


def write_safetensors(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write atomically: a crash mid-write never leaves a file that looks complete."""
    tmp = path.with_name(path.name + ".tmp")
    # safetensors refuses shared or non-contiguous storage; give it owned copies.
    owned = {k: v.detach().contiguous().clone() if v.data_ptr() in _shared_ptrs(state) else v.detach().contiguous()
             for k, v in state.items()}
    save_file(owned, str(tmp), metadata=metadata or {"format": "pt"})
    with_umask_mode(tmp)
    tmp.replace(path)


def with_umask_mode(path: Path) -> None:
    """safetensors creates its files 0600 whatever the umask; give `path` the mode any other new
    file gets, so a model saved for others to read is readable by them."""
    mask = os.umask(0)  # the only way to read the umask; set straight back
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _shared_ptrs(state: dict[str, torch.Tensor]) -> set[int]:
    seen, shared = set(), set()
    for v in state.values():
        ptr = v.data_ptr()
        (shared if ptr in seen else seen).add(ptr)
    return shared
