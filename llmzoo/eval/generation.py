"""Answering `GenerateUntil` requests: greedy ones in left-padded batches, sampled ones alone.

Greedy requests that share their stop strings and token budget run together through
llmzoo.infer's batched, KV-cached decoder (`llmzoo.infer.generate.generate` with a list of
prompts): it left-pads, counts positions over real tokens only and stops each row at its own
first stop string or EOS, so a row's completion is the one it gets alone. Prompts are sorted by
token length (longest first) so a batch pads little and one that does not fit fails at once.

Left alone (one request per call, as before):
- sampled requests (temperature > 0, or n > 1 samples for pass@k): a seeded sample drawn in a
  batch would use another random stream than the same request alone;
- encoder-decoder models (their batched decoder is not checked against the unbatched one here);
- a prompt whose max_new_tokens would run past the model's context: the decoder shortens the
  budget to fit the batch's longest prompt, which would cut a shorter row's completion early.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from llmzoo.eval.requests import GenerateUntil

Progress = Callable[[int], None]


def generate_until(model: nn.Module, tokenizer, requests: Sequence[GenerateUntil], batch_size: int,
                   progress: Progress | None = None) -> list[list[str]]:
    """Completions for each request (a list of options.get("n", 1) strings), in request order."""
    out: list[list[str] | None] = [None] * len(requests)
    batchable: dict[tuple, list[tuple[int, int]]] = {}  # (stops, budget) -> [(prompt length, request index)]
    for i, r in enumerate(requests):
        n_prompt = len(tokenizer.encode(r.context))
        if _batchable(model, r, n_prompt):
            batchable.setdefault((r.until, r.max_new_tokens), []).append((n_prompt, i))
        else:
            out[i] = _alone(model, tokenizer, r)
            if progress is not None:
                progress(1)
    for (until, budget), rows in batchable.items():
        order = [i for _, i in sorted(rows, key=lambda row: -row[0])]
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            texts = _generate(model, tokenizer, [requests[i].context for i in chunk], max_new_tokens=budget,
                              stop=list(until))
            for i, text in zip(chunk, texts):
                out[i] = [text]
            if progress is not None:
                progress(len(chunk))
    return out  # type: ignore[return-value]


def _batchable(model: nn.Module, request: GenerateUntil, n_prompt: int) -> bool:
    opts = request.options
    greedy = float(opts.get("temperature", 0.0)) == 0.0 and int(opts.get("n", 1)) == 1
    fits = n_prompt + request.max_new_tokens < model.config.max_seq_len
    return greedy and fits and model.config.arch == "decoder"


def _alone(model: nn.Module, tokenizer, request: GenerateUntil) -> list[str]:
    """One request's n completions; sample j is drawn with seed + j (reproducible pass@k)."""
    n = int(request.options.get("n", 1))
    opts = {k: request.options[k] for k in ("temperature", "top_p", "top_k") if k in request.options}
    seed = request.options.get("seed")
    return [_generate(model, tokenizer, request.context, max_new_tokens=request.max_new_tokens,
                      stop=list(request.until), seed=None if seed is None else int(seed) + j, **opts)
            for j in range(n)]


def _generate(model: nn.Module, tokenizer, prompt, **kwargs):
    from llmzoo.infer.generate import generate  # llmzoo.infer imports the model stack: load it when needed

    return generate(model, tokenizer, prompt, **kwargs)
