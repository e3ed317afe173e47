"""benchmarks/_machine.py: the CPU facts every benchmark prints before its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "_machine.py"
_spec = importlib.util.spec_from_file_location("bench_machine", _PATH)
machine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(machine)

AVX2_ONLY = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu sse avx fma avx2\n"
ZEN4 = "model name\t: AMD EPYC\nflags\t\t: avx fma avx2 avx512f avx512_bf16 avx512_vnni\n"


def test_reads_model_and_gemm_flags():
    facts = machine.cpu_facts(AVX2_ONLY)
    assert facts["model"] == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert facts["flags"]["avx2"] and not facts["flags"]["avx512f"] and not facts["flags"]["avx512_bf16"]
    assert machine.cpu_facts(ZEN4)["flags"]["avx512_bf16"]


def test_names_the_bf16_regime():
    assert "emulated" in machine.bf16_kind(machine.cpu_facts(AVX2_ONLY)["flags"])
    assert "native bf16" in machine.bf16_kind(machine.cpu_facts(ZEN4)["flags"])


def test_describe_this_machine():
    text = machine.describe_machine()
    assert len(text.splitlines()) == 2
    assert torch.backends.cpu.get_cpu_capability() in text and "logical cores" in text
    for name in ("train.py", "decode.py"):  # both benchmarks print it before anything else they measure
        assert "print(describe_machine()" in (_PATH.parent / name).read_text()
