"""A RETRO model on disk: `config.json` (RetroConfig.to_dict) and `model.safetensors` (never pickle), so a
model trained by the loop's `task: retro` (llmzoo.retro.task) can be reloaded with its neighbour database."""

from __future__ import annotations

import json
from pathlib import Path

from llmzoo.checkpoint import read_safetensors, write_safetensors
from llmzoo.errors import LlmzooError
from llmzoo.models.retro import Retro, build_retro
from llmzoo.models.retro_config import RetroConfig


def save_retro(model: Retro, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"retro": model.config.to_dict()}, indent=1) + "\n", encoding="utf-8")
    write_safetensors(model.state_dict(), out / "model.safetensors")
    return out


def load_retro(path: str | Path) -> Retro:
    path = Path(path)
    try:
        config = RetroConfig.from_dict(json.loads((path / "config.json").read_text(encoding="utf-8"))["retro"])
    except (OSError, ValueError, KeyError) as e:
        raise LlmzooError(f"{path} is not a saved RETRO model (config.json with a 'retro' entry): {e}") from None
    model = build_retro(config)  # on the host, so non-persistent buffers (RoPE's frequencies) are computed
    model.load_state_dict(read_safetensors(path / "model.safetensors"), strict=True)
    return model.eval()
