"""docs/context_extension.md's commands, shortened (one play, a tiny model, a few steps): pretrain at
window W, fine-tune at 4W with position interpolation (recipe context-pi-shakespeare), with YaRN and
without scaling (the control), then benchmarks/context_extension.py measures both against the base."""

from __future__ import annotations

import subprocess
import sys

import pytest

import llmzoo
from llmzoo.assets import asset_path
from llmzoo.cli import main
from llmzoo.config import RopeScaling
from llmzoo.errors import AssetMissingError
from tests.train.helpers import REPO

W = 8
TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "batch_size=2", "threads=1",
        "eval_every=2", "eval_batches=1", "checkpoint_every=2", "warmup_steps=1", "progress=false"]


def test_the_documented_context_extension_run(tmp_path):
    try:
        asset_path("shakespeare", "shksprdata/texts/hamlet_gut.txt")
    except AssetMissingError as e:
        pytest.skip(str(e))
    base = tmp_path / "context-base"
    assert main(["pretrain", "--recipe", "shakespeare", f"seq_len={W}", f"model.max_seq_len={W}", "max_steps=2",
                 f"run_dir={base}", "prepare.files=[shksprdata/texts/hamlet_gut.txt]", "prepare.tokenizer.vocab_size=300",
                 "sample_tokens=0", *TINY]) == 0
    where = [f"model.from={base / 'model'}", f"data.tokens={base / 'data'}", f"seq_len={4 * W}",
             f"model.max_seq_len={4 * W}", "max_steps=2", *TINY]
    assert main(["finetune", "--recipe", "context-pi-shakespeare", f"run_dir={tmp_path / 'context-pi-shakespeare'}",
                 *where]) == 0
    assert main(["finetune", "--recipe", "context-pi-shakespeare", "model.rope_scaling=null",
                 f"run_dir={tmp_path / 'context-no-pi'}", *where]) == 0
    assert main(["finetune", "--recipe", "context-pi-shakespeare",
                 f"model.rope_scaling={{kind: yarn, factor: 4, original_max_seq_len: {W}}}",
                 f"run_dir={tmp_path / 'context-yarn'}", *where]) == 0
    assert llmzoo.load(tmp_path / "context-yarn" / "model").config.rope_scaling == RopeScaling("yarn", 4.0, W)
    assert llmzoo.load(tmp_path / "context-pi-shakespeare" / "model").config.rope_scaling == RopeScaling("linear", 4.0)
    assert llmzoo.load(tmp_path / "context-no-pi" / "model").config.rope_scaling is None

    plot = tmp_path / "context_extension.png"
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "context_extension.py"), "--data", str(base / "data"),
                          "--base", str(base / "model"), "--tuned", str(tmp_path / "context-pi-shakespeare" / "model"),
                          str(tmp_path / "context-no-pi" / "model"), "--windows", str(W), str(4 * W), "--plot", str(plot),
                          "--threads", "1"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith(("base", "context"))]
    assert [r.split("  ")[0] for r in rows] == [f"base (trained at {W})", "base + PI x4, not fine-tuned",
                                                "context-pi-shakespeare (linear x4)", "context-no-pi (no scaling)"]
    assert all(len(r.split()[-2:]) == 2 and all(float(x) > 1 for x in r.split()[-2:]) for r in rows)
    assert plot.is_file()
