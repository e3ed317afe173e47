"""What CPU a benchmark ran on, printed first so a table can be matched to its machine.

torch's bf16 GEMMs are fast only where the CPU has bf16 instructions (AVX-512 BF16 or AMX);
on an AVX2-only CPU they are emulated and run far below fp32, which is where llmzoo's
bf16-through-fp32 kernels (llmzoo.nn.bf16) win by 20x and more. The same benchmark therefore
gives very different ratios on the two kinds of CPU, and its output must say which it was.
"""

from __future__ import annotations

import os
from pathlib import Path

# The /proc/cpuinfo flags that decide GEMM speed, in the order the output lists them.
GEMM_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_facts(cpuinfo: str | None = None) -> dict[str, object]:
    """CPU model, logical core count and which GEMM_FLAGS it has, read from /proc/cpuinfo text."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""  # not Linux: model and flags unknown
    model, flags = "unknown", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in GEMM_FLAGS}}


def bf16_kind(flags: dict[str, bool]) -> str:
    """Which of the benchmark's two regimes this CPU is in."""
    if flags.get("amx_bf16") or flags.get("avx512_bf16"):
        return "native bf16 GEMMs (AVX-512 BF16/AMX): llmzoo's bf16-via-fp32 kernels do not apply"
    return "no bf16 instructions (bf16 GEMMs emulated): llmzoo's bf16-via-fp32 kernels apply"


def describe_machine() -> str:
    """Two lines: the CPU and its GEMM features, then torch's view of it."""
    import torch

    facts = cpu_facts()
    flags = facts["flags"]
    have = " ".join(f for f, on in flags.items() if on) or "none of them"
    lacks = " ".join(f for f, on in flags.items() if not on)
    capability = torch.backends.cpu.get_cpu_capability()
    return (f"machine: {facts['model']}, {facts['cores']} logical cores; GEMM features: {have}"
            + (f" (not: {lacks})" if lacks else "") + "\n"
            f"torch {torch.__version__}, CPU capability {capability}, {torch.get_num_threads()} threads; "
            + bf16_kind(flags))
