"""Training checkpoints: `run_dir/checkpoints/step_XXXXXXX/`, written atomically.

    model.safetensors       full model state dict (llmzoo parameter names)
    optimizer.safetensors   optimizer tensors, keyed "state/<param name>/<key>"
    optimizer.json          param groups (with parameter names) and non-tensor optimizer state
    trainer_state.json      step, data position, LR scale, spike history, RNG states per rank
    model_config.json       the ModelConfig
    recipe.json             the resolved recipe
    COMPLETE                written last

Everything goes into a hidden temp directory first, each file is fsynced, then COMPLETE, then one
rename makes the checkpoint visible. A crash at any point leaves either the previous checkpoints
or a hidden temp directory, which loaders ignore and the next save removes. Pickle is never used:
tensors are safetensors, everything else JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmzoo.checkpoint import with_umask_mode
from llmzoo.config import ModelConfig
from llmzoo.errors import CheckpointError

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"
_STEP_DIR = re.compile(r"^step_(\d{7,})$")
_FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "trainer_state.json", "model_config.json",
          "recipe.json")


@dataclass
class TrainingState:
    """Everything a checkpoint holds, as full (unsharded) CPU tensors and plain JSON values."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # {"state": {name: {key: tensor | number}}, "param_groups": [{..., "params": [names]}]}
    trainer: dict[str, Any]
    config: ModelConfig
    recipe: dict[str, Any]


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


def _owned(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share storage (tied weights): give each its own copy."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else -len(out) - 1
        out[key] = t.clone() if ptr in seen else t
        seen.add(ptr)
    return out


def _split_optimizer(optimizer: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for name, entries in optimizer["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{name}/{key}"] = value
            else:
                plain_state.setdefault(name, {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in optimizer["param_groups"]]
    return tensors, {"param_groups": groups, "plain_state": plain_state}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, name, entry = key.split("/", 2)
        state.setdefault(name, {})[entry] = value
    for name, entries in meta.get("plain_state", {}).items():
        state.setdefault(name, {}).update(entries)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def save_checkpoint(run_dir: str | Path, step: int, state: TrainingState, *, keep_last: int | None = None,
                    crash_midway: bool = False) -> Path:
    """Write `state` as step `step`; keep only the newest `keep_last` complete checkpoints."""
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_owned(state.model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
    with_umask_mode(tmp / "model.safetensors")
    if crash_midway:  # test hook: a hard kill half-way through a checkpoint
        os.kill(os.getpid(), signal.SIGKILL)
    tensors, meta = _split_optimizer(state.optimizer)
    save_file(_owned(tensors), str(tmp / "optimizer.safetensors"), metadata={"format": "pt"})
    with_umask_mode(tmp / "optimizer.safetensors")
    _write_json(tmp / "optimizer.json", meta)
    _write_json(tmp / "trainer_state.json", state.trainer)
    state.config.to_json(tmp / "model_config.json")
    _write_json(tmp / "recipe.json", state.recipe)
    for name in _FILES:
        _fsync_file(tmp / name)
    (tmp / COMPLETE).write_text(f"step {step}\n")
    _fsync_file(tmp / COMPLETE)
    _fsync_dir(tmp)
    if final.exists():  # a step being written again after a rewind: retire the old copy first
        _remove(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    _clean_stale_temp(root)
    if keep_last:
        for old in complete_checkpoints(run_dir)[:-keep_last]:
            _remove(old)
    return final


def _remove(path: Path) -> None:
    """Delete a checkpoint so that no moment leaves it looking complete: the marker goes first."""
    marker = path / COMPLETE
    if marker.exists():
        marker.unlink()
    shutil.rmtree(path, ignore_errors=True)


def _clean_stale_temp(root: Path) -> None:
    for leftover in root.glob(".tmp-step_*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid != str(os.getpid()):
            shutil.rmtree(leftover, ignore_errors=True)


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (directories without COMPLETE are ignored)."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = _STEP_DIR.match(path.name)
        if m and path.is_dir() and (path / COMPLETE).is_file():
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found)]


def checkpoint_step(path: Path) -> int:
    m = _STEP_DIR.match(path.name)
    if not m:
        raise CheckpointError(f"{path} is not a checkpoint directory (step_XXXXXXX)")
    return int(m.group(1))


def find_checkpoint(source: str | Path) -> Path:
    """The checkpoint `source` names: a checkpoint directory, or the latest complete one of a run dir."""
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"resume directory {str(source)!r} does not exist")
    if _STEP_DIR.match(path.name):
        if not (path / COMPLETE).is_file():
            raise CheckpointError(f"{path} is an incomplete checkpoint (no {COMPLETE} marker); resume from its run dir "
                                  f"to pick the latest complete one")
        return path
    run_dir = path.parent if path.name == CHECKPOINTS else path
    found = complete_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no complete checkpoint in {run_dir}/{CHECKPOINTS}; nothing to resume")
    return found[-1]


def run_dir_of(checkpoint: Path) -> Path:
    return checkpoint.parent.parent


def read_model_config(checkpoint: Path) -> ModelConfig:
    data = _read_json(checkpoint / "model_config.json")
    if "decoder" in data and "encoder" in data:  # a RETRO task's two stacks (RetroConfig.to_json)
        from llmzoo.models.retro_config import RetroConfig

        return RetroConfig.from_dict(data)
    return ModelConfig.from_json(checkpoint / "model_config.json")


def read_recipe(checkpoint: Path) -> dict[str, Any]:
    return _read_json(checkpoint / "recipe.json")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the checkpoint is damaged, resume from an earlier one") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg}); the checkpoint is damaged") from None


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the checkpoint is damaged, resume from an earlier one") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0]})") from None


def load_checkpoint(checkpoint: Path) -> TrainingState:
    return TrainingState(
        model=_read_tensors(checkpoint / "model.safetensors"),
        optimizer=_join_optimizer(_read_tensors(checkpoint / "optimizer.safetensors"),
                                  _read_json(checkpoint / "optimizer.json")),
        trainer=_read_json(checkpoint / "trainer_state.json"),
        config=read_model_config(checkpoint),
        recipe=read_recipe(checkpoint),
    )


def config_differences(saved: ModelConfig, current: ModelConfig) -> list[str]:
    a, b = saved.to_dict(), current.to_dict()
    return [f"{k} {a.get(k)!r} != {b.get(k)!r}" for k in a if a.get(k) != b.get(k)]


def check_same_model(checkpoint: Path, current: ModelConfig) -> None:
    """One-line CheckpointError naming the fields where the checkpoint's model differs."""
    diffs = config_differences(read_model_config(checkpoint), current)
    if diffs:
        raise CheckpointError(f"{checkpoint} was trained with a different model config ({'; '.join(diffs)}); "
                              f"resume with the same model settings or start a new run_dir")
