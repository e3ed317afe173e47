"""Autoregressive generation for decoder models: batched, KV-cached, streamed.

The cache is created here and passed into the model on every step (the model holds
no generation state). Batches are left-padded so every row's next token sits in the
last column; position ids count real tokens only, so a padded row decodes exactly
as it would alone.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import Cache, StaticCache
from llmzoo.infer.sink_cache import SinkCache
from llmzoo.infer.compiled import bucket_batch, bucket_cache_len, can_compile, decode_step_for, existing_decode_step
from llmzoo.infer.sampling import SamplingConfig, check_generation_args, next_tokens


# New tokens from which compiling pays in a fresh process: SmolLM2-135M on one AVX2 core compiles its
# step in ~8 s with a warm disk cache (~100 s cold) and then saves ~15 ms a token (15.8 -> 20.8 tok/s).
COMPILE_FROM = 512


class ContextLengthWarning(UserWarning):
    """Generation was cut short because prompt + new tokens reached the model's context length."""


@dataclass
class Generated:
    token_ids: list[int]  # new tokens only (stop/EOS token excluded)
    finish_reason: str  # "eos", "stop" or "length"


def _context_limit(model: nn.Module) -> int:
    return model.config.max_seq_len - _virtual_positions(model)


def _virtual_positions(model: nn.Module) -> int:
    """Positions (and cache slots) a prompt/prefix adapter's virtual tokens take before the prompt
    (llmzoo.peft.virtual_tokens); 0 without one."""
    virtual = getattr(model, "virtual_tokens", None)
    return virtual.n_tokens if virtual is not None and not virtual.disabled else 0


@torch.inference_mode()
def generate_ids(
    model: nn.Module,
    prompts: list[list[int]],
    *,
    max_new_tokens: int = 128,
    sampling: SamplingConfig = SamplingConfig(),
    eos_ids: set[int] | frozenset[int] = frozenset(),
    pad_id: int = 0,
    seed: int | None = None,
    on_token: Callable[[int, int], bool] | None = None,
    compile: bool | None = None,
    attention_sinks: int | None = None,
    window: int | None = None,
) -> list[Generated]:
    """Generate for a batch of token-id prompts.

    on_token(row, token_id) is called for every new token; returning True stops that row
    (used for stop strings and streaming). compile: decode through the compiled step
    (llmzoo.infer.compiled); None picks it where it pays (see `use_compiled`).
    attention_sinks=n: keep the first n tokens and a rolling window of `window` (default the model's
    context) in the cache (StreamingLLM, llmzoo.infer.sink_cache): no context limit, bounded memory.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise LlmzooError("prompt is empty: give at least one token of text")
    if max_new_tokens < 1:
        raise LlmzooError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    sinks = None if attention_sinks is None else _sink_settings(model, prompts, attention_sinks, window)
    limit = _context_limit(model) if sinks is None else math.inf  # sink positions never leave the window
    longest = max(len(p) for p in prompts)
    if longest >= limit:
        virtual = f" ({model.config.max_seq_len} less the adapter's {model.config.max_seq_len - limit} virtual tokens)" \
            if limit < model.config.max_seq_len else ""
        raise LlmzooError(f"prompt of {longest} tokens does not fit this model's context of {limit} tokens{virtual}; "
                          f"shorten it")
    clamped = max_new_tokens > limit - longest  # warned about below if a row runs into the limit
    max_new_tokens = min(max_new_tokens, limit - longest)
    device = next(model.parameters()).device
    B = len(prompts)
    ids = torch.full((B, longest), pad_id, dtype=torch.long)
    mask = torch.zeros((B, longest), dtype=torch.long)
    for row, prompt in enumerate(prompts):  # left padding
        ids[row, longest - len(prompt):] = torch.tensor(prompt)
        mask[row, longest - len(prompt):] = 1
    padded = any(len(p) < longest for p in prompts)
    ids, mask = ids.to(device), mask.to(device)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None

    seen = None
    if sampling.repetition_penalty != 1.0:
        seen = torch.zeros(B, model.config.vocab_size, dtype=torch.bool, device=device)
        seen.scatter_(1, ids, mask.bool())
    max_len = _virtual_positions(model) + longest + max_new_tokens
    decoder = _Decoder(model, B, max_len, sinks is None and use_compiled(model, compile, B, max_len, max_new_tokens),
                       sinks)
    logits = decoder.prefill(ids, mask if padded else None)
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    results = [Generated([], "length") for _ in range(B)]
    for step in range(max_new_tokens):
        token = next_tokens(logits, sampling, seen, generator)  # (B,)
        is_eos = torch.isin(token, eos) if eos.numel() else torch.zeros_like(finished)
        token_list = token.tolist()
        for row in range(B):
            if finished[row]:
                continue
            if is_eos[row]:
                finished[row] = True
                results[row].finish_reason = "eos"
                continue
            results[row].token_ids.append(token_list[row])
            if on_token is not None and on_token(row, token_list[row]):
                finished[row] = True
                results[row].finish_reason = "stop"
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        if seen is not None:
            seen.scatter_(1, token[:, None], True)
        logits = decoder.step(token.masked_fill(finished, pad_id))
    if clamped and any(r.finish_reason == "length" for r in results):
        # As transformers does, say so rather than return a shorter text without a word.
        warnings.warn(ContextLengthWarning(
            f"generation stopped at the model's context length of {limit} tokens "
            f"({longest} prompt + {max_new_tokens} new), before max_new_tokens"), stacklevel=3)
    return results


def use_compiled(model: nn.Module, compile: bool | None, batch: int, max_len: int, max_new_tokens: int) -> bool:
    """compile=None picks the faster path: the compiled step where the model supports it and either
    this process already compiled it for these shapes or the generation is long enough to repay
    compiling (COMPILE_FROM new tokens). LLMZOO_COMPILE=0/1 overrides the default."""
    if not can_compile(model):
        return False
    if compile is None:
        setting = os.environ.get("LLMZOO_COMPILE", "")
        step = existing_decode_step(model)
        warm = step is not None and step.is_compiled_for(batch, max_len)
        compile = setting == "1" if setting in ("0", "1") else warm or max_new_tokens >= COMPILE_FROM
    return compile


def _sink_settings(model: nn.Module, prompts: list[list[int]], sinks: int, window: int | None) -> tuple[int, int]:
    if len({len(p) for p in prompts}) > 1:
        raise LlmzooError("attention sinks need prompts of one length (a padded row would keep padding as its "
                          "sinks); generate them one at a time")
    if _virtual_positions(model):
        raise LlmzooError("attention sinks cannot be combined with a prompt/prefix-tuning adapter yet")
    return sinks, window or model.config.max_seq_len


class _Decoder:
    """Runs the prompt, then one token per step, on a Cache (eager), a StaticCache through the
    compiled decode step, or a rolling SinkCache; all return next-token logits (B, V) and advance
    their cache."""

    def __init__(self, model: nn.Module, batch: int, max_len: int, compiled: bool,
                 sinks: tuple[int, int] | None = None) -> None:
        self.model, self.batch, self.compiled = model, batch, compiled
        self.mask, self.chunk = None, max_len
        if sinks is not None:
            n_sinks, window = sinks
            self.chunk = max(1, min(64, (window - n_sinks) // 4))  # the prompt goes in chunks that leave room
            self.cache = SinkCache.for_model(model, batch, window, sink_tokens=n_sinks, headroom=self.chunk)
        elif compiled:  # bucketed shapes: rows past `batch` are idle padding
            self.cache = StaticCache.for_model(model, bucket_batch(batch), bucket_cache_len(max_len))
            self.step_fn = decode_step_for(model)
        else:
            self.cache = Cache.for_model(model, batch, max_len)

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.compiled:
            extra = self.cache.batch_size - self.batch
            ids = torch.cat((ids, ids.new_zeros(extra, ids.shape[1])))
            mask = torch.cat((mask if mask is not None else torch.ones_like(ids[:self.batch]),
                              ids.new_zeros(extra, ids.shape[1]))) if extra or mask is not None else None
        else:
            self.mask = mask
        # One chunk except on a rolling SinkCache (self.chunk = the prompt's length otherwise). The mask a
        # dynamic cache takes covers past + new tokens; a StaticCache's covers the new ones, the same here.
        for start in range(0, ids.shape[1], self.chunk):
            part, part_mask = ids[:, start:start + self.chunk], None if mask is None else mask[:, :start + self.chunk]
            logits = self.model(part, attention_mask=part_mask, cache=self.cache, logits_to_keep=1).logits[:, -1]
            self.cache.advance(part.shape[1], None if mask is None else mask[:, start:start + self.chunk])
        return logits[:self.batch]

    def step(self, token: torch.Tensor) -> torch.Tensor:
        if self.compiled:
            token = torch.cat((token, token.new_zeros(self.cache.batch_size - self.batch)))
            logits = self.step_fn(token[:, None], self.cache)
        else:
            if self.mask is not None:  # padded rows: the mask grows with the cache
                self.mask = torch.cat((self.mask, self.mask.new_ones(self.batch, 1)), dim=1)
            logits = self.model(token[:, None], attention_mask=self.mask, cache=self.cache, logits_to_keep=1).logits[:, -1]
        self.cache.advance(1)
        return logits[:self.batch]


def generate(
    model: nn.Module,
    tokenizer,
    prompt: str | list[str],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
    stop: list[str] | None = None,
    stream: Callable[[str], None] | None = None,
    chat: bool = False,
    system: str | None = None,
    speculative=None,
    num_draft_tokens: int | None = None,
    speculative_stats=None,
    compile: bool | None = None,
    attention_sinks: int | None = None,
    window: int | None = None,
    _prompt_has_special_tokens: bool = False,
) -> str | list[str]:
    """Complete `prompt` (a string, or a list of strings for a padded batch).

    temperature=0 is greedy. chat=True wraps the prompt in the model's chat template (with `system`
    as the system message). stream(text) receives printable text as it is produced (batch of one only).
    A ContextLengthWarning says when the model's context length cut generation short.
    speculative: "prompt-lookup", "layers:N" (the model's first N layers) or a draft model with the
    same vocabulary, proposing num_draft_tokens per target forward (llmzoo.infer.speculative; one
    prompt at a time): greedy text is unchanged, sampling draws from the same distribution (not the
    same sample for a seed). speculative_stats: a
    SpeculativeStats that receives the counts (drafted, accepted, target forwards).
    compile: True/False forces the compiled decode step on or off; None uses it where it pays
    (llmzoo.infer.generate.use_compiled). attention_sinks=n (with `window`, default the model's
    context): StreamingLLM's rolling cache, generation without a context limit (generate_ids).
    """
    # Checked first, so the decoder and encoder-decoder paths both refuse bad values in one line.
    sampling = check_generation_args(max_new_tokens, temperature, top_k, top_p, repetition_penalty)
    if system is not None and not chat:
        raise LlmzooError("a system message is used only in a chat template; pass chat=True with system=")
    if speculative is not None and getattr(model.config, "arch", "decoder") != "decoder":
        raise LlmzooError(f"speculative decoding works for decoder models; {model.config.name} is an "
                          f"{model.config.arch.replace('_', '-')}: drop speculative=")
    if getattr(model.config, "arch", "decoder") == "encoder_decoder":
        from llmzoo.infer.seq2seq import complete  # encoder-decoder models decode differently

        return complete(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                        top_p=top_p, repetition_penalty=repetition_penalty, seed=seed, stop=stop, stream=stream,
                        chat=chat, system=system, prompt_has_special_tokens=_prompt_has_special_tokens)
    if model.config.arch != "decoder" or getattr(model, "lm_head", None) is None:
        raise LlmzooError(f"{model.config.name} has no language-model head; it cannot generate text")
    single = isinstance(prompt, str)
    texts = prompt_texts(tokenizer, prompt, stream=stream, chat=chat, system=system)
    # A rendered chat template already holds its special tokens (BOS etc.): don't add them twice.
    templated = chat or _prompt_has_special_tokens
    prompts = [tokenizer.encode(t, add_special_tokens=not templated) for t in texts]
    decoders = [tokenizer.stream_decoder() for _ in texts]
    produced = ["" for _ in texts]
    stops = [s for s in (stop or []) if s]

    def on_token(row: int, token_id: int) -> bool:
        piece = decoders[row].push(token_id)
        produced[row] += piece
        hit = next((s for s in stops if s in produced[row]), None)
        if hit is not None:
            cut = produced[row].index(hit)
            if stream is not None:  # print only what precedes the stop string
                already = len(produced[row]) - len(piece)
                stream(produced[row][already:cut] if cut > already else "")
            produced[row] = produced[row][:cut]
            return True
        if stream is not None and piece:
            stream(piece)
        return False

    eos = set(getattr(tokenizer, "stop_token_ids", None) or ())
    if tokenizer.eos_token_id is not None:
        eos.add(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    if speculative is not None:
        from llmzoo.infer.speculative import speculative_generate_ids

        results = speculative_generate_ids(model, prompts, speculative=speculative, num_draft_tokens=num_draft_tokens,
                                           max_new_tokens=max_new_tokens, sampling=sampling, eos_ids=eos,
                                           pad_id=pad, seed=seed, on_token=on_token)
        if speculative_stats is not None:
            vars(speculative_stats).update(vars(results[0].stats))
    else:
        results = generate_ids(model, prompts, max_new_tokens=max_new_tokens, sampling=sampling, eos_ids=eos,
                               pad_id=pad, seed=seed, on_token=on_token, compile=compile,
                               attention_sinks=attention_sinks, window=window)
    outputs = []
    for row, result in enumerate(results):
        if result.finish_reason == "stop":
            outputs.append(produced[row])
        else:
            outputs.append(tokenizer.decode(result.token_ids, skip_special_tokens=True))
    return outputs[0] if single else outputs


def prompt_texts(tokenizer, prompt: str | list[str], *, stream: Callable[[str], None] | None, chat: bool,
                 system: str | None) -> list[str]:
    """The prompt(s) as a list of texts, rendered with the model's chat template when chat=True."""
    texts = [prompt] if isinstance(prompt, str) else list(prompt)
    if stream is not None and len(texts) != 1:
        raise LlmzooError("streaming works for one prompt at a time")
    if chat:
        texts = [tokenizer.apply_chat_template(_messages(t, system), add_generation_prompt=True) for t in texts]
    return texts


def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": prompt}]
