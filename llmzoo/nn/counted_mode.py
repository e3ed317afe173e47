"""A TorchFunctionMode that knows, per thread, whether it is entered: kernels that run their own
GEMMs or casts (llmzoo.nn.linear_cross_entropy, llmzoo.nn.fused) follow the policy of a mode that
only sees F.linear calls."""

from __future__ import annotations

import threading

from torch.overrides import TorchFunctionMode


class CountedMode(TorchFunctionMode):
    """Subclasses set `_depth = threading.local()` of their own; `active()` says whether this
    thread is inside one of their instances."""

    _depth: threading.local

    def __enter__(self):
        self._depth.n = getattr(self._depth, "n", 0) + 1
        return super().__enter__()

    def __exit__(self, *exc):
        self._depth.n -= 1
        return super().__exit__(*exc)

    @classmethod
    def active(cls) -> bool:
        return getattr(cls._depth, "n", 0) > 0
