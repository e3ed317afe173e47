"""Fault injection for the loop's own tests: read from the environment only, never a recipe field,
so production recipes carry no test hooks.

    LLMZOO_TRAIN_FAULTS='{"nan_batches": [6], "spike_batches": [10], "step_delay": 0.05, "crash_in_checkpoint": 15}'

- nan_batches / spike_batches: batch indices whose loss becomes NaN / is scaled by 1000 (the spike
  recovery tests);
- step_delay: seconds slept after each step (gives a test time to kill the run);
- crash_in_checkpoint: the step whose checkpoint the process SIGKILLs itself half-way through.
tests/train/helpers.py's `faults(...)` writes the variable.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

from llmzoo.errors import ConfigError

ENV = "LLMZOO_TRAIN_FAULTS"
KEYS = ("nan_batches", "spike_batches", "step_delay", "crash_in_checkpoint")


@dataclass(frozen=True)
class Faults:
    nan_batches: frozenset[int] = frozenset()
    spike_batches: frozenset[int] = frozenset()
    step_delay: float = 0.0
    crash_in_checkpoint: int | None = None

    def loss_factor(self, batch_index: int) -> float:
        if batch_index in self.nan_batches:
            return math.nan
        if batch_index in self.spike_batches:
            return 1000.0
        return 1.0


def faults_from_env() -> Faults:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return Faults()
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(f"{ENV} is not JSON; unset it (it injects faults for llmzoo's own tests)") from None
    unknown = sorted(set(spec) - set(KEYS)) if isinstance(spec, dict) else ["(not a mapping)"]
    if unknown:
        raise ConfigError(f"{ENV}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    return Faults(frozenset(spec.get("nan_batches", ())), frozenset(spec.get("spike_batches", ())),
                  float(spec.get("step_delay", 0.0)), spec.get("crash_in_checkpoint"))
