"""Checks a pretraining run passes before it does any work.

A run that cannot succeed should say so in one line within a second, not after training a
tokenizer, nor by being killed for memory: `seq_len=100000` on a 256-position model once climbed
past 14 GB of RSS, and `model=llama-7b` on a 23 GB machine was killed by the kernel without a word.
Trainer calls these in order:

- `prepare_run_dir`: the run directory can be created and written;
- `check_model_fits` (before data preparation, with the vocabulary the data will most likely have):
  seq_len against the model's max_seq_len, and the run's estimated memory against the machine's;
- `check_data` (once the token data is open, before any model is built): the training split holds
  at least one batch of distinct windows.

Both refusals that a user may know better about have a recipe key to override them:
`allow_long_sequences=true` and `allow_large_memory=true`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError

# Positions read from a table of max_seq_len rows: a longer sequence indexes past its end.
TABLE_POSITIONS = ("learned", "sinusoidal")
# ZeRO stage of each data-parallel mode (llmzoo.scaling.training_memory): zero2 is FSDP with the
# parameters kept gathered, fsdp is ZeRO-3.
ZERO_STAGE = {"zero1": 1, "zero2": 2, "fsdp": 3}
# torch, its kernels and Python itself, besides what the estimate counts
RUNTIME_BYTES = 0.5e9


def prepare_run_dir(run_dir: Path) -> None:
    """Create `run_dir` (and its parents), or a one-line LlmzooError saying why it cannot be used."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise LlmzooError(f"cannot create run_dir {str(run_dir)!r} ({reason}); set run_dir=... to a writable "
                          f"directory") from None
    if not run_dir.is_dir() or not os.access(run_dir, os.W_OK | os.X_OK):
        raise LlmzooError(f"run_dir {str(run_dir)!r} is not a writable directory; set run_dir=... to a writable "
                          f"directory")


def expected_vocab_size(recipe: Any, run_dir: Path) -> int:
    """The vocabulary the dataset will have, as far as it is known before the data exists: an
    explicit model.vocab_size, the prepared data's manifest, the tokenizer to be trained, or the
    zoo model's (the embedding is a sizeable part of a small model's memory)."""
    spec = recipe.model if isinstance(recipe.model, dict) else {"from": recipe.model}
    if spec.get("vocab_size"):
        return int(spec["vocab_size"])
    data_dir = Path(recipe.data) if recipe.data else run_dir / "data"
    try:
        return int(json.loads((data_dir / "manifest.json").read_text())["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    tokenizer = (recipe.prepare or {}).get("tokenizer")
    if isinstance(tokenizer, dict):
        return int(tokenizer.get("vocab_size", 8000))
    if spec.get("from"):
        from llmzoo.models.zoo import get_config

        return get_config(str(spec["from"])).vocab_size
    return ModelConfig().vocab_size


def check_seq_len(recipe: Any, config: ModelConfig) -> None:
    """seq_len within the positions the model was configured for."""
    if recipe.seq_len <= config.max_seq_len:
        return
    what = f"seq_len={recipe.seq_len} is longer than the model's max_seq_len={config.max_seq_len}"
    if config.position in TABLE_POSITIONS:
        raise LlmzooError(f"{what} ({config.position} positions have {config.max_seq_len} rows); lower seq_len "
                          f"or raise model.max_seq_len")
    if not recipe.allow_long_sequences:
        raise LlmzooError(f"{what}; lower seq_len, raise model.max_seq_len, or set allow_long_sequences=true to "
                          f"train {config.position} positions past it anyway")


def available_memory() -> float:
    """Bytes this process could still allocate without swapping (psutil, else /proc/meminfo)."""
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf  # unknown: no refusal on a guess


def estimate_memory(recipe: Any, config: ModelConfig, world_size: int = 1) -> tuple[float, dict[str, float]]:
    """(bytes this machine needs, the per-process parts): weights, gradients and AdamW states
    (llmzoo.scaling.training_memory) plus the activations of one micro-batch, times the processes
    that share this machine."""
    from llmzoo.flops import count_params
    from llmzoo.scaling import training_memory

    mode = recipe.parallel
    dp = world_size if mode in ("ddp", "zero1", "zero2", "fsdp", "ep") else 1  # ep: rows split, experts counted whole
    tp = world_size if mode == "tp" else 1
    pp = world_size if mode == "pp" else 1
    micro = math.ceil(recipe.batch_size / (recipe.grad_accum * dp))
    if mode == "pp":
        micro = math.ceil(micro / recipe.pp_microbatches)
    try:
        memory = training_memory(count_params(config), config=config, dp=dp, tp=tp, pp=pp, zero=ZERO_STAGE.get(mode, 0),
                                 micro_batch=micro, seq_len=recipe.seq_len)
    except LlmzooError:
        return 0.0, {}  # a layout the estimate cannot express: the distributed setup reports it
    activations = memory.activations
    if recipe.precision == "fp32":
        activations *= 2  # the estimate counts 16-bit activations
    if recipe.activation_checkpointing:
        activations /= max(config.n_layers, 1)  # only block inputs are kept, one block recomputed at a time
    # llmzoo trains fp32 parameters in both precisions (bf16 is autocast over fp32 master weights):
    # 4 + 4 bytes of weight and gradient and 8 of AdamW moments, where the estimate splits the same
    # 16 bytes as 2 + 2 + 12
    parts = {"weights": 2 * memory.weights, "gradients": 2 * memory.grads, "AdamW": memory.optimizer * 8 / 12,
             "activations": activations}
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size if os.environ.get("RANK") else 1))
    return (sum(parts.values()) + RUNTIME_BYTES) * max(local, 1), parts


def check_memory(recipe: Any, config: ModelConfig, world_size: int = 1) -> None:
    """Refuse a run whose estimated memory exceeds what the machine has available."""
    if recipe.allow_large_memory:
        return
    from llmzoo.scaling import human_bytes

    need, parts = estimate_memory(recipe, config, world_size)
    have = available_memory()
    if need <= have:
        return
    detail = ", ".join(f"{k} {human_bytes(v)}" for k, v in parts.items())
    raise LlmzooError(f"this run needs about {human_bytes(need)} of memory ({detail}; batch {recipe.batch_size} x "
                      f"seq_len {recipe.seq_len}) but {human_bytes(have)} is available; use a smaller model, "
                      f"batch_size (with grad_accum) or seq_len, or set allow_large_memory=true to try anyway")


def check_model_fits(recipe: Any, run_dir: Path, world_size: int = 1) -> ModelConfig:
    """Before data preparation: the model at the expected vocabulary, checked for seq_len and memory."""
    from llmzoo.train.model import resolve_model_config

    config = resolve_model_config(recipe.model, vocab_size=expected_vocab_size(recipe, run_dir), eos_id=None,
                                  name=recipe.name)
    check_seq_len(recipe, config)
    check_memory(recipe, config, world_size)
    return config


def check_data(recipe: Any, num_tokens: int, window: int) -> None:
    """The training split holds at least one batch of distinct windows of `window` tokens (each
    window starts seq_len after the previous one, as llmzoo.train.batches cuts them)."""
    windows = 0 if num_tokens < window else (num_tokens - window) // recipe.seq_len + 1
    if windows >= recipe.batch_size:
        return
    need = (recipe.batch_size - 1) * recipe.seq_len + window
    raise LlmzooError(f"the training data holds {num_tokens} tokens, fewer than one batch of batch_size "
                      f"{recipe.batch_size} x seq_len {recipe.seq_len} ({need} tokens); lower seq_len or "
                      f"batch_size, or prepare more data")
