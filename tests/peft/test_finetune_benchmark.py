"""benchmarks/finetune.py runs end to end (shortened: a tiny LLaMA, batch 1 x 8, one step): the three
workers start, report the same first-step loss for llmzoo and peft (same weights, adapters at zero),
and the table and QLoRA's byte ratio are printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model

ROOT = Path(__file__).resolve().parents[2]


def test_finetune_benchmark_runs(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(family="llama", vocab_size=128, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128,
                         max_seq_len=64)
    llmzoo.save(build_model(config), tmp_path / "base")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "finetune.py"), "--source", str(tmp_path / "base"),
                          "--batch", "1", "--seq", "8", "--steps", "1", "--precision", "fp32"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    losses = dict(re.findall(r"(peft|llmzoo|qlora) ([\d.]+)", out.stdout.split("first-step loss")[1].splitlines()[0]))
    assert abs(float(losses["peft"]) - float(losses["llmzoo"])) < 1e-4
    for worker in ("peft", "llmzoo", "qlora"):
        assert re.search(rf"^{worker} +[\d.]+ +[\d.]+ +[\d.]+x", out.stdout, re.M)
    ratio = float(re.search(r"= ([\d.]+)x", out.stdout.split("QLoRA base weights")[1]).group(1))
    assert ratio <= 0.3
