"""benchmarks/decode.py --quick runs end to end on the packaged SmolLM2 so the benchmark cannot rot:
every contender's child process starts, produces exactly the tokens it was asked for (EOS ignored),
and the table, decode.json and the plot are written. llama.cpp takes part only where llama_cpp is
importable (`make bench`); otherwise the script must say it skipped it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_decode_benchmark_quick(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "decode.py"), "--quick", "--threads", "1",
                          "--out", str(tmp_path / "decode")], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("machine: ")  # the CPU line comes before any number
    record = json.loads((tmp_path / "decode.json").read_text())
    results, n = record["results"], record["new_tokens"]
    expected = {"llmzoo gguf eager", "transformers fp32"}
    if importlib.util.find_spec("llama_cpp") is None:
        assert "llama.cpp: skipped, llama_cpp is not importable" in out.stdout
        print("llama_cpp not importable: llama.cpp left out of the benchmark run (pip install '.[bench]')")
    else:
        expected.add("llama.cpp")
    assert set(results) == expected, out.stderr[-3000:]
    for name, r in results.items():
        assert r["decode_tokens"] == n, name  # EOS ignored: every engine decodes exactly n tokens
        assert r["decode_tok_s"] > 0 and r["prefill_tok_s"] > 0 and r["peak_rss_mb"] >= r["rss_runtime_mb"] > 0
    for name in expected - {"transformers fp32"}:  # the ones that serve concurrent requests
        for k in (1, 2):
            assert results[name][f"serve{k}_tokens"] == k * record["serve_tokens"], name
    assert results["llmzoo gguf eager"]["speculative_tokens"] == n
    assert (tmp_path / "decode.png").stat().st_size > 0
