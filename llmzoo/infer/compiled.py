"""The decode step as one compiled graph: static shapes on a StaticCache, through torch.compile.

Eager PyTorch pays Python and dispatcher overhead for every small op of every layer; for a model of
30 narrow layers that is milliseconds per token, more than the matmuls themselves (the issue's
measurement: 4 ms of framework cost per SmolLM2-135M step). Compiled with fullgraph=True (a graph
break would be an error, not a silent slow path) and dynamic=False, one decode step is one call into
generated code. Shapes are bucketed so a process compiles a handful of graphs, not one per prompt:
the batch is padded up to a power of two and the cache length up to a multiple of 256.

Compiled code is kept on disk (inductor's FX-graph cache, under ~/.cache/llmzoo/compile), so a later
process recompiles faster; the time it took is printed either way.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from llmzoo.infer.cache import StaticCache

CACHE_LEN_BUCKET = 256
_COMPILE_DIR = Path(os.environ.get("LLMZOO_COMPILE_DIR", Path.home() / ".cache" / "llmzoo" / "compile"))


def bucket_batch(batch: int) -> int:
    return 1 << (batch - 1).bit_length()


def bucket_cache_len(length: int) -> int:
    return -(-length // CACHE_LEN_BUCKET) * CACHE_LEN_BUCKET


def can_compile(model: nn.Module) -> bool:
    """A decoder whose masks a StaticCache can express, without an adapter that edits its inputs.
    Mixture-of-experts layers are left eager: routing tokens to experts gathers a data-dependent
    number of rows per expert (nonzero), which a static graph cannot hold."""
    virtual = getattr(model, "virtual_tokens", None)
    return (StaticCache.supports(model.config) and not model.config.n_experts
            and (virtual is None or virtual.disabled))


def _use_our_compile_dir() -> None:
    """Keep inductor's cache under ~/.cache/llmzoo/compile rather than in /tmp (cleared at reboot),
    unless the user chose a directory: torch fills the variable with its /tmp default on import."""
    import getpass
    import tempfile

    default = os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR", default) == default:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(_COMPILE_DIR)


def _step(model: nn.Module, token: torch.Tensor, cache: StaticCache) -> torch.Tensor:
    return model(token, cache=cache, logits_to_keep=1).logits[:, -1]


class CompiledDecodeStep:
    """`step(token (B, 1), cache) -> next-token logits (B, V)`, compiled on first use per shape bucket."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        _use_our_compile_dir()
        self._compiled = torch.compile(_step, fullgraph=True, dynamic=False)
        self._seen: set[tuple[int, int]] = set()

    def is_compiled_for(self, batch: int, max_len: int) -> bool:
        return (bucket_batch(batch), bucket_cache_len(max_len)) in self._seen

    def __call__(self, token: torch.Tensor, cache: StaticCache) -> torch.Tensor:
        shape = (cache.batch_size, cache.max_len)
        if shape in self._seen:
            return self._compiled(self.model, token, cache)
        start = time.perf_counter()
        logits = self._compiled(self.model, token, cache)
        self._seen.add(shape)
        print(f"compiled the decode step (batch {shape[0]}, cache {shape[1]}) in {time.perf_counter() - start:.1f} s "
              f"(kept in {os.environ['TORCHINDUCTOR_CACHE_DIR']})", file=sys.stderr, flush=True)
        return logits


_STEP_ATTRIBUTE = "_llmzoo_decode_step"


def existing_decode_step(model: nn.Module) -> CompiledDecodeStep | None:
    """The step decode_step_for made for this model, if any (nothing is compiled by asking)."""
    return model.__dict__.get(_STEP_ATTRIBUTE)


def decode_step_for(model: nn.Module) -> CompiledDecodeStep:
    """The model's compiled step, made once and kept on the model (compiled graphs are reused)."""
    step = existing_decode_step(model)
    if step is None:
        step = model.__dict__[_STEP_ATTRIBUTE] = CompiledDecodeStep(model)
    return step
