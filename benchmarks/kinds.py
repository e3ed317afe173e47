"""What the model kinds cost: decoding per token against context length, Mamba against attention;
and a training step of a mixture of experts against a dense model with the same active parameters.

    .venv/bin/python benchmarks/kinds.py [--lengths 128,512,1024,2000] [--decode 24] [--threads 1]
                                         [--batch 8] [--seq 256] [--steps 3] [--skip decode|moe]

Decode: mamba-130m's and smollm2-135m-instruct's full-size configs (random weights: the cost does
not depend on them), one prompt of L tokens prefilled, then --decode greedy tokens through
llmzoo.generate_ids (eager, no compiled step); each token's time is the gap between successive
on_token calls, so the prefill is not in it, and the fastest token is reported (other jobs' noise
only ever adds time). Attention reads a KV cache that grows with L; Mamba's
state is a fixed (d_inner x N) per layer, so its per-token cost should stay flat (Gu and Dao 2023).

MoE: a dense decoder (d 512, 8 layers, SwiGLU d_ff 1536) and its Switch-style MoE twin (the same with
8 experts of that width in every other layer, top-1 routing: the same parameters active per token,
~4x the feed-forward parameters in those layers), one AdamW step on batch x seq random tokens,
fp32. The MoE step does the router, the dispatch and the load-balancing loss on top of the same GEMM
work, so its tokens/s shows what routing costs on a CPU, where no expert runs in parallel.
Prints the CPU first (benchmarks/_machine.py); writes results/kinds.json and results/kinds.png.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

DECODE_MODELS = ("mamba-130m", "smollm2-135m-instruct")


def decode_costs(lengths: list[int], new_tokens: int) -> dict[str, list[float]]:
    """model -> ms per decoded token (the fastest of the decoded tokens) at each prompt length."""
    import torch

    from llmzoo.infer.generate import generate_ids
    from llmzoo.models.build import build_model
    from llmzoo.models.zoo import get_config

    out = {}
    for name in DECODE_MODELS:
        torch.manual_seed(0)
        model = build_model(get_config(name)).eval()
        vocab = model.config.vocab_size
        out[name] = []
        for length in lengths:
            prompt = torch.randint(0, vocab, (length,), generator=torch.Generator().manual_seed(length)).tolist()
            stamps: list[float] = []

            def on_token(row: int, token: int) -> bool:
                stamps.append(time.perf_counter())
                return False

            with torch.no_grad():
                generate_ids(model, [prompt], max_new_tokens=new_tokens, compile=False, on_token=on_token)
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            # the fastest token: on a machine shared with other jobs the median carries their noise
            out[name].append(1000 * min(gaps))
            print(f"{name:<24} context {length:>5}: {out[name][-1]:7.1f} ms/token (fastest; median "
                  f"{1000 * statistics.median(gaps):.1f})", flush=True)
    return out


def moe_step(batch: int, seq: int, steps: int) -> dict[str, dict]:
    import torch

    from llmzoo.config import ModelConfig
    from llmzoo.flops import count_params
    from llmzoo.models.build import build_model

    base = dict(vocab_size=8192, d_model=512, n_layers=8, n_heads=8, d_ff=1536, max_seq_len=seq)  # SwiGLU, RMSNorm, RoPE
    configs = {"dense": ModelConfig(**base),
               "moe (8 experts, top-1, every other layer)": ModelConfig(**base, n_experts=8, n_experts_per_token=1,
                                                                      ffns=("dense", "moe"))}
    out = {}
    for name, config in configs.items():
        torch.manual_seed(0)
        model = build_model(config).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        data = torch.randint(0, config.vocab_size, (batch, seq + 1), generator=torch.Generator().manual_seed(1))

        def step() -> None:
            out_ = model(data[:, :-1], targets=data[:, 1:])
            loss = out_.loss + (out_.get("aux_loss") if out_.get("aux_loss") is not None else 0.0)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()  # warm-up
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        out[name] = {"tokens_per_s": batch * seq / min(times), "seconds": times,
                     "params": count_params(config), "active_params": count_params(config, active=True)}
        print(f"{name:<42} {out[name]['tokens_per_s']:8.1f} tokens/s  params {out[name]['params'] / 1e6:.1f}M, "
              f"active {out[name]['active_params'] / 1e6:.1f}M", flush=True)
    return out


def save_chart(decode: dict | None, lengths: list[int], moe: dict | None, path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    panels = [p for p in (decode, moe) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    ax = iter(axes[0])
    if decode:
        a = next(ax)
        for name, costs in decode.items():
            a.plot(lengths, costs, marker="o", label=name)
        a.set_xlabel("context length (tokens)")
        a.set_ylabel("ms per decoded token (fastest)")
        a.set_ylim(bottom=0)
        a.set_title("decode cost vs context", fontsize=9)
        a.legend(fontsize=8)
    if moe:
        a = next(ax)
        bars = a.bar(range(len(moe)), [r["tokens_per_s"] for r in moe.values()], color=["#999", "#3a7"])
        a.bar_label(bars, fmt="%.0f", fontsize=8)
        a.set_xticks(range(len(moe)), [n.split(" (")[0] for n in moe])
        a.set_ylabel("training tokens / s")
        a.set_title("training step, same active parameters", fontsize=9)
    fig.suptitle(machine.splitlines()[0][:110], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="128,512,1024,2000")
    parser.add_argument("--decode", type=int, default=24, help="tokens decoded per length")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip", choices=("decode", "moe"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()

    import torch

    from _machine import describe_machine  # benchmarks/ is on sys.path when this script runs

    torch.set_num_threads(args.threads)
    machine = describe_machine()
    print(machine, flush=True)
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    decode = decode_costs(lengths, args.decode) if args.skip != "decode" else None
    moe = moe_step(args.batch, args.seq, args.steps) if args.skip != "moe" else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"peak RSS of this process (every model above): {peak:.0f} MB")
    (out / "kinds.json").write_text(json.dumps({"machine": machine, "lengths": lengths, "decode_ms_per_token": decode,
                                                "moe": moe, "max_rss_mb": peak}, indent=1))
    save_chart(decode, lengths, moe, out / "kinds.png", machine)
    print(f"wrote {out / 'kinds.json'} and {out / 'kinds.png'}")


if __name__ == "__main__":
    main()
