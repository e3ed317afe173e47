"""LoRA fine-tuning speed and memory: llmzoo vs peft + transformers on SmolLM2-135M (the offline
asset's real weights), same LoRA, same batch, same AdamW, in one run; and QLoRA's memory.

    .venv/bin/python benchmarks/finetune.py [--steps 2] [--rounds 1] [--batch 8] [--seq 256]
                                            [--precision bf16|fp32] [--threads 1] [--r 8] [--source NAME|DIR]

Workers, each its own process so that its peak resident memory (ru_maxrss) is its own:
  peft     transformers' LlamaForCausalLM (SDPA attention) wrapped by peft.get_peft_model, loss by
           F.cross_entropy over the full logits (what a peft user's training loop does)
  llmzoo   llmzoo.load + llmzoo.peft.apply(model, "lora"), the training loop's settings: gate/up as one
           GEMM (llmzoo.nn.fused) and the LM head + cross-entropy by chunks without a logits tensor
  qlora    the same with quantize="nf4" (llmzoo.peft.nf4): every block linear stored as NF4
All load the same weights: the GGUF asset dequantized by llmzoo and saved as an HF directory, which
transformers reads with from_pretrained. LoRA on q_proj and v_proj (peft's default for LLaMA), r 8,
alpha 16, AdamW (fused) over the adapter only. The parent gives the workers turns (peft, llmzoo,
qlora, then reversed order the next round), so a machine shared with other jobs slows all alike.
The first-step losses are printed side by side (the adapters start at zero, so each is the base
model's loss: llmzoo's and peft's agree; QLoRA's differs by the quantization). The script prints
the CPU first (benchmarks/_machine.py): bf16 speed depends on whether it has bf16 instructions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = "smollm2-135m-instruct"
TARGETS = ["q_proj", "v_proj"]
WORKERS = ("peft", "llmzoo", "qlora")


def _worker(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bf16 = args.precision == "bf16"
    extra: dict[str, float] = {}
    if args.worker == "peft":
        import peft
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(args.weights, dtype=torch.float32, attn_implementation="sdpa")
        model = peft.get_peft_model(base, peft.LoraConfig(r=args.r, lora_alpha=2 * args.r, target_modules=TARGETS,
                                                          lora_dropout=0.0, task_type="CAUSAL_LM"))
        vocab = base.config.vocab_size

        def forward_loss(inputs, targets):
            logits = model(input_ids=inputs).logits
            return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
    else:
        import llmzoo
        import llmzoo.peft
        from llmzoo.nn.bf16 import bf16_gemm_via_fp32, use_bf16_emulation
        from llmzoo.nn.frozen_cast import frozen_weight_casts
        from llmzoo.train.model import set_fused_projections

        model = llmzoo.load(args.weights, dtype=torch.float32)
        quantize = {"quantize": "nf4"} if args.worker == "qlora" else {}
        llmzoo.peft.apply(model, "lora", target_modules=TARGETS, r=args.r, lora_alpha=2 * args.r, **quantize)
        set_fused_projections(model, True)
        emulate = bf16 and use_bf16_emulation("auto")
        vocab = model.config.vocab_size
        if quantize:
            from llmzoo.peft.nf4 import NF4Linear

            quantized = [m for m in model.modules() if isinstance(m, NF4Linear)]
            extra = {"base_nf4_bytes": sum(m.storage_bytes() for m in quantized),
                     "base_bf16_bytes": sum(m.in_features * m.out_features * 2 for m in quantized)}

        def forward_loss(inputs, targets):  # the training loop's contexts (llmzoo.train.engine.autocast)
            with bf16_gemm_via_fp32(emulate), frozen_weight_casts(bf16 and not emulate):
                return model(inputs, targets=targets).loss

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=True)
    batch = torch.randint(0, vocab, (args.batch, args.seq + 1), generator=torch.Generator().manual_seed(1))
    inputs, targets = batch[:, :-1], batch[:, 1:]

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = forward_loss(inputs, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    first = step()  # warm-up: allocator, kernel selection
    reset_peak_rss()  # from here VmHWM is the training steps' peak alone (loading aside)
    print(json.dumps({"ready": True, "first_loss": first, "trainable": sum(p.numel() for p in trainable), **extra}),
          flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] != "step":
            break
        times = []
        for _ in range(int(words[1])):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        print(json.dumps({"seconds": times}), flush=True)
    print(json.dumps({"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "train_rss_mb": peak_rss_mb()}), flush=True)


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak resident set (VmHWM) to its current size."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float | None:
    """VmHWM from /proc/self/status in MB (None where it cannot be read)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Worker:
    def __init__(self, name: str, args: argparse.Namespace, weights: Path) -> None:
        self.name = name
        cmd = [sys.executable, __file__, "--worker", name, "--weights", str(weights), "--precision", args.precision,
               "--batch", str(args.batch), "--seq", str(args.seq), "--threads", str(args.threads), "--r", str(args.r)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.times: list[float] = []

    def read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.name} exited (code {self.proc.wait()})")
            if line.startswith("{"):
                return json.loads(line)

    def step(self, count: int) -> None:
        self.proc.stdin.write(f"step {count}\n")
        self.proc.stdin.flush()
        self.times.extend(self.read()["seconds"])

    def finish(self) -> dict:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        rss = self.read()
        self.proc.wait()
        return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per worker turn")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of turns")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--r", type=int, default=8, help="LoRA rank (alpha = 2r)")
    parser.add_argument("--source", default=SOURCE, help="the base (a LLaMA-family model llmzoo.load reads)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)

    import llmzoo

    from _machine import describe_machine  # benchmarks/ is on sys.path when this script runs

    print(describe_machine(), flush=True)
    weights = Path(tempfile.mkdtemp(prefix="llmzoo-finetune-bench-")) / "model"
    llmzoo.save(llmzoo.load(args.source), weights, format="hf")  # one set of weights both sides read
    tokens = args.batch * args.seq
    print(f"{args.source}: LoRA r={args.r} on {'+'.join(TARGETS)}, batch {args.batch} x {args.seq} = {tokens} tokens, "
          f"{args.precision}{' autocast' if args.precision == 'bf16' else ''}, AdamW over the adapter, "
          f"{args.threads} thread(s), {args.rounds} round(s) of {args.steps} step(s)", flush=True)
    workers = [Worker(name, args, weights) for name in WORKERS]
    ready = {w.name: w.read() for w in workers}
    print("first-step loss (adapters at zero): " + ", ".join(f"{n} {r['first_loss']:.5f}" for n, r in ready.items()))
    for r in range(args.rounds):
        for w in workers if r % 2 == 0 else workers[::-1]:
            w.step(args.steps)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{w.name} {min(w.times):.2f}s" for w in workers), flush=True)
    rss = {w.name: w.finish() for w in workers}
    reference = workers[0]
    print(f"\n{'worker':<8} {'tokens/s best':>14} {'median':>8} {'vs peft':>8} {'peak RSS':>10} "
          f"{'training peak':>14} {'trainable':>10}")
    for w in workers:
        rates = sorted(tokens / t for t in w.times)
        ratio = min(reference.times) / min(w.times)
        train = rss[w.name]["train_rss_mb"]
        print(f"{w.name:<8} {rates[-1]:>14.1f} {statistics.median(rates):>8.1f} {ratio:>7.2f}x "
              f"{rss[w.name]['max_rss_mb']:>7.0f} MB {'-' if train is None else f'{train:.0f} MB':>14} "
              f"{ready[w.name]['trainable']:>10,}")
    print("peak RSS: the whole process, loading included; training peak: from the end of the warm-up step on")
    q = ready["qlora"]
    print(f"\nQLoRA base weights (every block linear): {q['base_nf4_bytes'] / 2**20:.1f} MiB as NF4 vs "
          f"{q['base_bf16_bytes'] / 2**20:.1f} MiB in bf16 = {q['base_nf4_bytes'] / q['base_bf16_bytes']:.3f}x")
    print("targets: llmzoo >= 1.5x peft's tokens/s, peak RSS <= peft's; QLoRA base <= 0.3x bf16")


if __name__ == "__main__":
    main()
