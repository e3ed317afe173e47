"""The engines benchmarks/decode.py races, each behind the same four calls, each in its own process.

Every contender runs in a child process of its own (`serve_rounds`), so its peak resident memory
(getrusage's ru_maxrss of that child) is its own and a torch-free llama.cpp child does not carry
torch's few hundred MB. The parent sends "round" commands to the children in turn, so the rounds of
the engines interleave and a slow minute of the shared machine hits all of them alike.

All contenders decode greedily and ignore EOS, so each produces exactly the tokens asked for; each
call returns the number of tokens it actually produced, which is what the rates are computed from.
"""

from __future__ import annotations

import os
import resource
import time
import traceback
from pathlib import Path
from typing import Protocol


class Contender(Protocol):
    def decode(self, prompt: list[int], n: int) -> int: ...  # batch-1 greedy, n new tokens
    def prefill(self, prompt: list[int]) -> None: ...  # prompt in, first token out (time to first token)


def _rss_mb() -> float:
    """Current resident set of this process, MB (Linux /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class LlmzooContender:
    """llmzoo.load(quant=...) + generate_ids(compile=...); the Engine and prompt lookup where asked."""

    def __init__(self, path: Path, *, quant: str | None, compile: bool, serve: bool, speculative: bool,
                 serve_len: int) -> None:
        import llmzoo

        self.model = llmzoo.load(path, quant=quant)
        self.compile = compile
        self.engine = None
        if serve:
            # One engine of 16 rows serves every concurrency level, as a server would; max_len covers the
            # longest prompt + new tokens (its StaticCache is max_batch x max_len).
            self.engine = llmzoo.Engine(self.model, llmzoo.load_tokenizer("smollm2-135m-instruct"), max_batch=16,
                                        max_len=serve_len, compile=compile)
            self.engine.eos = frozenset()  # EOS ignored, like every other contender: each request runs to max_tokens
        self.serves, self.speculative = serve, speculative
        self.last_stats = None

    def decode(self, prompt: list[int], n: int) -> int:
        from llmzoo.infer.generate import generate_ids

        return len(generate_ids(self.model, [prompt], max_new_tokens=n, compile=self.compile)[0].token_ids)

    def decode_speculative(self, prompt: list[int], n: int) -> int:
        from llmzoo.infer.speculative import speculative_generate_ids

        out = speculative_generate_ids(self.model, [prompt], speculative="prompt-lookup", max_new_tokens=n)[0]
        self.last_stats = out.stats
        return len(out.token_ids)

    def prefill(self, prompt: list[int]) -> None:
        from llmzoo.infer.generate import generate_ids

        generate_ids(self.model, [prompt], max_new_tokens=1, compile=False)  # one token: no decode step runs

    def serve(self, prompts: list[list[int]], n: int) -> int:
        requests = [self.engine.submit(p, max_tokens=n) for p in prompts]  # all at once: they share the batch
        return sum(len(r.result().token_ids) for r in requests)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


class TransformersContender:
    """transformers fp32 from the same GGUF (dequantized on load), `generate` greedy."""

    def __init__(self, path: Path) -> None:
        import transformers

        self.model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                       dtype="float32").eval()

    def _generate(self, prompt: list[int], n: int) -> int:
        import torch

        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                      do_sample=False, pad_token_id=0)
        return out.shape[1] - ids.shape[1]

    def decode(self, prompt: list[int], n: int) -> int:
        return self._generate(prompt, n)

    def prefill(self, prompt: list[int]) -> None:
        self._generate(prompt, 1)


class LlamaCppContender:
    """llama-cpp-python on the same .gguf file: its token loop (`generate`), which never stops at EOS
    by itself, so counting n tokens out of it is a greedy decode of n tokens with EOS ignored."""

    def __init__(self, path: Path, threads: int, n_ctx: int) -> None:
        import llama_cpp

        self.serves = True
        self.llm = llama_cpp.Llama(model_path=str(path), n_threads=threads, n_threads_batch=threads, n_ctx=n_ctx,
                                   n_batch=512, verbose=False)

    def decode(self, prompt: list[int], n: int) -> int:
        self.llm.reset()  # no prefix reuse from the previous call: every run prefills its prompt
        produced = 0
        for _ in self.llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            produced += 1
            if produced == n:
                break
        return produced

    def prefill(self, prompt: list[int]) -> None:
        self.llm.reset()
        self.llm.eval(prompt)  # computes the last position's logits: the first token is a sample away

    def serve(self, prompts: list[list[int]], n: int) -> int:
        return sum(self.decode(p, n) for p in prompts)  # one after another: llama-cpp-python has no batch server

    def close(self) -> None:
        self.llm.close()


def build(spec: dict) -> Contender:
    path = Path(spec["path"])
    if spec["kind"] == "llmzoo":
        return LlmzooContender(path, quant=spec["quant"], compile=spec["compile"], serve=spec["serve"],
                               speculative=spec["speculative"], serve_len=spec["serve_len"])
    if spec["kind"] == "transformers":
        return TransformersContender(path)
    return LlamaCppContender(path, spec["threads"], spec["n_ctx"])


def _timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def run_round(contender: Contender, work: dict) -> dict:
    """One round of every measurement this contender takes part in; rates in tokens/s."""
    result: dict = {}
    seconds, produced = _timed(contender.decode, work["prompt"], work["new_tokens"])
    result["decode_tok_s"], result["decode_tokens"] = produced / seconds, produced
    if getattr(contender, "speculative", False):
        seconds, produced = _timed(contender.decode_speculative, work["prompt"], work["new_tokens"])
        stats = contender.last_stats
        result["speculative_tok_s"], result["speculative_tokens"] = produced / seconds, produced
        result["speculative_acceptance"] = stats.acceptance_rate
        result["speculative_tokens_per_forward"] = stats.new_tokens / max(stats.target_forwards, 1)
    seconds, _ = _timed(contender.prefill, work["long_prompt"])
    result["prefill_tok_s"], result["ttft_s"] = len(work["long_prompt"]) / seconds, seconds
    if getattr(contender, "serves", False):
        for k in work["concurrency"]:
            seconds, produced = _timed(contender.serve, work["serve_prompts"][:k], work["serve_tokens"])
            result[f"serve{k}_tok_s"], result[f"serve{k}_tokens"] = produced / seconds, produced
    result["peak_rss_mb"] = _peak_rss_mb()  # so far: the best-of (max) over rounds is the process's peak
    return result


def serve_rounds(conn, spec: dict) -> None:
    """The child process: build the contender, then answer "round" commands until "close"."""
    threads = str(spec["threads"])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before torch loads: the Engine's own thread reads it too
        os.environ[var] = threads
    try:
        if spec["kind"] != "llamacpp":
            import torch

            torch.set_num_threads(spec["threads"])
        rss_runtime = _rss_mb()  # the runtime alone (torch, or llama_cpp) before any weights
        seconds, contender = _timed(build, spec)
        conn.send({"ready": True, "load_s": seconds, "rss_runtime_mb": rss_runtime, "rss_loaded_mb": _rss_mb()})
        while True:
            command, work = conn.recv()
            if command == "close":
                if hasattr(contender, "close"):
                    contender.close()
                conn.send({"peak_rss_mb": _peak_rss_mb()})
                return
            conn.send(run_round(contender, work))
    except BaseException:  # the parent prints it and carries on with the other engines
        conn.send({"error": traceback.format_exc()})
