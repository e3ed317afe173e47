"""llmzoo's own C++ kernel for group-wise integer weights (grouped_matmul.cpp says how it computes).

It is built once per machine with torch's extension mechanism (g++ and ninja, AVX2 + FMA) into
~/.cache/llmzoo/native/ — by `make setup` (`python -m llmzoo.quant.native build`) or at first use —
and registered as the operator `torch.ops.llmzoo.grouped_matmul`, which torch.compile treats as
one opaque call (its shape function is below). Where it cannot be built or run (no compiler, not
x86 with AVX2, `LLMZOO_NATIVE=0`), `available()` is False with one warning saying why, and
QuantLinear keeps PyTorch's int4 kernel: slower on AVX2-only CPUs, same results within bf16.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("grouped_matmul.cpp")
GROUP = 32  # the kernel's only group size: every 4/5/8-bit GGUF type and llmzoo's int4 use it


def build_dir() -> Path:
    # one directory per torch version: an extension built against another torch's headers won't load
    return Path(os.environ.get("LLMZOO_CACHE", Path.home() / ".cache" / "llmzoo")) / "native" / torch.__version__


def _cpu_supports() -> str | None:
    """Why the kernel cannot run on this CPU, or None."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"it is written for x86 AVX2 and this CPU is {platform.machine()}"
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return f"this CPU lacks AVX2 (torch reports {torch.backends.cpu.get_cpu_capability()})"
    return None


@functools.cache
def available() -> bool:
    """Build (once per machine; later calls load the cached library) and register the kernel."""
    if os.environ.get("LLMZOO_NATIVE", "1") == "0":
        return False
    reason = _cpu_supports()
    if reason is None:
        try:
            _load()
            return True
        except Exception as error:  # a missing compiler, ninja or header: run without the kernel
            reason = f"it failed to build ({type(error).__name__}: {str(error).strip().splitlines()[-1][:200]})"
    warnings.warn(f"llmzoo's native quantized matmul is not used: {reason}; quantized layers run on "
                  f"PyTorch's int4 kernel instead", stacklevel=2)
    return False


def _load() -> None:
    from torch.utils import cpp_extension

    directory = build_dir()
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "llmzoo_native.so").exists():
        print("llmzoo: building the native quantized matmul kernel (once per machine, ~1 min) ...",
              file=sys.stderr, flush=True)
    # is_python_module=False: the library only registers torch.ops.llmzoo.*; rebuilt when the source changes
    cpp_extension.load(name="llmzoo_native", sources=[str(SOURCE)], build_directory=str(directory),
                       extra_cflags=["-O3", "-mavx2", "-mfma", "-std=c++17"], is_python_module=False,
                       verbose=False)
    _register_shape()


def _register_shape() -> None:
    if getattr(_register_shape, "done", False):
        return

    @torch.library.register_fake("llmzoo::grouped_matmul")
    def _(x, codes, scale, offset, bits):
        return x.new_empty(x.shape[0], scale.shape[0])

    _register_shape.done = True


def grouped_matmul(x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor,
                   bits: int) -> torch.Tensor:
    """(M, K) fp32 rows times the (N, K) weight scale * code + offset, groups of 32 -> (M, N) fp32.
    bits 4: codes (N, K/2) uint8, GGUF's nibble order; bits 8: codes (N, K) int8. Call `available()` first."""
    return torch.ops.llmzoo.grouped_matmul(x, codes, scale, offset, bits)

