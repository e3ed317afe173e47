"""Throughput and model FLOPs utilisation (MFU), and the progress bar that shows them.

MFU (Chowdhery et al. 2022, PaLM, appendix B) = achieved model FLOP/s / peak FLOP/s, where model
FLOPs per token are 6N + the attention term (Kaplan et al. 2020; llmzoo.flops) and do not count
recomputation. No datasheet peak exists for an arbitrary CPU, so the peak is measured once at the
start: the best FLOP/s of a square matmul in the training dtype.
"""

from __future__ import annotations

import math
import time

import torch


def measure_matmul_peak(dtype: torch.dtype = torch.float32, seconds: float = 0.5, device: str = "cpu") -> float:
    """Best observed FLOP/s of square matmuls (`a @ b` and `F.linear`, the model's kernel) in `dtype`.

    512 x 512 products, then 1024 x 1024 when those are fast, repeated for ~`seconds`: the best
    repetition is what the machine does when nothing else competes for it (on a shared machine the
    median can be several times lower). (A CPU without native
    bf16 runs bf16 ~10x slower than fp32; the small size keeps that measurement short too.)"""
    import torch.nn.functional as F

    best = 0.0
    start_all = time.perf_counter()
    for size, share in ((512, 0.7), (1024, 1.0)):
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        took = math.inf
        reps = 0
        while reps < 2 or time.perf_counter() - start_all < share * seconds:
            for kernel in (torch.matmul, F.linear):
                start = time.perf_counter()
                kernel(a, b)
                if device != "cpu":  # GPU kernels run asynchronously: time their completion
                    torch.cuda.synchronize()
                took = min(took, time.perf_counter() - start)
            reps += 1
        best = max(best, 2.0 * size**3 / took)
        remaining = seconds - (time.perf_counter() - start_all)
        if took * 8 * 4 > remaining:  # a 1024 product (8x the work) would not fit twice (e.g. emulated bf16)
            break
    return best


class Throughput:
    """Tokens/s and MFU over a sliding window of recent steps (the first steps include warm-up)."""

    def __init__(self, flops_per_token: float, peak_flops: float, window: int = 20) -> None:
        self.flops_per_token = flops_per_token
        self.peak = peak_flops
        self.window = window
        self._marks: list[tuple[float, int]] = []

    def update(self, tokens_total: int) -> None:
        self._marks.append((time.perf_counter(), tokens_total))
        del self._marks[: -self.window - 1]

    def restart(self) -> None:
        self._marks.clear()

    @property
    def tokens_per_s(self) -> float:
        if len(self._marks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._marks[0], self._marks[-1]
        return (n1 - n0) / max(t1 - t0, 1e-9)

    @property
    def mfu(self) -> float:
        return self.tokens_per_s * self.flops_per_token / self.peak if self.peak else 0.0


class ProgressBar:
    """tqdm over optimizer steps; tqdm supplies the ETA, we add loss, tokens/s and MFU."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str = "pretrain") -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc=desc)

    def update(self, step: int, loss: float, throughput: Throughput, val_loss: float | None = None) -> None:
        if self.bar is None:
            return
        self.bar.n = step
        post = f"loss {loss:.3f}"
        if val_loss is not None:
            post += f" val {val_loss:.3f}"
        post += f" | {throughput.tokens_per_s:,.0f} tok/s | MFU {100 * throughput.mfu:.1f}%"
        self.bar.set_postfix_str(post, refresh=False)
        self.bar.refresh()

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
