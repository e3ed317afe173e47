"""Deterministic, resumable sampling of (rows, seq_len + 1) token windows.

The token stream is cut into windows of seq_len + 1 tokens that start every seq_len tokens (the
extra token is the last target; objectives that shift nothing take windows of seq_len). Sample i
of the run is window perm_e[i mod W] of epoch e = i div W, where perm_e is a seeded permutation
of the W windows. A batch is therefore a pure function of (seed, sample index): the only state
to checkpoint is how many samples were consumed, and skipping batches after a loss spike is just
advancing that counter.
"""

from __future__ import annotations

import numpy as np
import torch

from llmzoo.errors import LlmzooError


class EpochOrder:
    """Sample i of the run -> item perm_e[i mod n] of epoch e = i div n, with one seeded
    permutation per (seed, epoch): any epoch's order is reproducible on its own."""

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self._epoch = -1
        self._perm: np.ndarray | None = None

    def __call__(self, sample: int) -> int:
        epoch, index = divmod(sample, self.n)
        if not self.shuffle:
            return index
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch = epoch
        return int(self._perm[index])


class WindowSampler:
    def __init__(self, dataset, seq_len: int, seed: int, *, window: int | None = None, shuffle: bool = True,
                 what: str = "training") -> None:
        """window: tokens per row (default seq_len + 1: inputs plus the shifted targets)."""
        self.dataset = dataset
        self.seq_len = seq_len
        self.window = window or seq_len + 1
        self.seed = seed
        self.shuffle = shuffle
        if dataset.num_tokens < self.window:
            raise LlmzooError(f"the {what} data has {dataset.num_tokens} tokens, fewer than one row of {self.window}; "
                              f"use more data or a smaller seq_len")
        self.num_windows = (dataset.num_tokens - self.window) // seq_len + 1
        self._window = EpochOrder(self.num_windows, seed, shuffle)

    def rows(self, first_sample: int, count: int) -> torch.Tensor:
        """Samples [first_sample, first_sample + count) as a (count, window) LongTensor."""
        out = np.empty((count, self.window), dtype=np.int64)
        for r in range(count):
            start = self._window(first_sample + r) * self.seq_len
            out[r] = self.dataset.read(start, self.window)
        return torch.from_numpy(out)

    @property
    def tokens_per_epoch(self) -> int:
        return self.num_windows * self.seq_len


class ExampleSampler:
    """The same scheme over the rows of a fine-tuning dataset (llmzoo.finetune registry): sample i
    of the run is row perm_e[i mod N] of epoch e = i div N. The dataset's `rows(indices)` is a pure
    function of the indices, so a batch is again a pure function of (seed, sample index)."""

    def __init__(self, dataset, seed: int, *, shuffle: bool = True, what: str = "training") -> None:
        self.dataset = dataset
        self.seed = seed
        self.shuffle = shuffle
        self.num_windows = len(dataset)  # the name the engine reads for "rows available"
        if self.num_windows < 1:
            raise LlmzooError(f"the {what} data has no rows")
        self._row = EpochOrder(self.num_windows, seed, shuffle)

    def rows(self, first_sample: int, count: int) -> dict[str, torch.Tensor]:
        """Samples [first_sample, first_sample + count) as the dataset's stacked batch."""
        return self.dataset.rows([self._row(first_sample + r) for r in range(count)])
