"""Generation for encoder-decoder models (T5, BART): greedy, sampling and beam search.

The source is encoded once; the decoder runs one token per step with a KV cache (its own keys
and values grow; the cross-attention keys/values of the encoder output are computed at the first
step and reused). Outputs start with the decoder start token, as transformers' `generate` does.

Beam search keeps, per input, the `num_beams` best running hypotheses and the `num_beams` best
finished ones, scoring a finished hypothesis by sum(log p) / generated_length ** length_penalty
(Wu et al. 2016, GNMT). It follows transformers' vectorised beam search step by step (2 * beams
candidates per step, its early-stopping heuristic), so the same model yields the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import Cache
from llmzoo.infer.sampling import SamplingConfig, next_tokens

NEG = -1.0e9  # "impossible" score, as transformers uses (finite, so sums stay ordered)


@dataclass(frozen=True)
class Seq2SeqConfig:
    max_new_tokens: int = 20
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0  # CTRL (Keskar et al. 2019), on the decoder's tokens as in transformers
    length_penalty: float = 1.0  # > 0 favours longer finished beams, < 0 shorter ones
    early_stopping: bool | str = False  # True: stop once num_beams beams finished; "never": exhaustive
    no_repeat_ngram_size: int = 0  # forbid repeating any n-gram (Paulus et al. 2018)
    use_cache: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise LlmzooError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_beams < 1:
            raise LlmzooError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.do_sample and self.num_beams > 1:
            raise LlmzooError("sampling with beams is not supported; use do_sample or num_beams > 1, not both")
        if self.early_stopping not in (True, False, "never"):
            raise LlmzooError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}")
        if self.no_repeat_ngram_size < 0:
            raise LlmzooError("no_repeat_ngram_size must be >= 0")
        _ = self.sampling  # checks temperature, top_k, top_p and repetition_penalty

    @property
    def sampling(self) -> SamplingConfig:
        """The per-step token choice: greedy unless do_sample."""
        return SamplingConfig(self.temperature if self.do_sample else 0.0, self.top_k, self.top_p,
                              self.repetition_penalty)


def banned_ngram_tokens(sequences: torch.Tensor, n: int) -> list[list[int]]:
    """For each row of (N, L) tokens, the next tokens that would repeat an n-gram already in it."""
    L = sequences.shape[1]
    if n == 0 or L + 1 < n:
        return [[] for _ in range(sequences.shape[0])]
    banned = []
    for row in sequences.tolist():
        prefix = tuple(row[L - n + 1:]) if n > 1 else ()
        seen = [row[i + n - 1] for i in range(L - n + 1) if tuple(row[i:i + n - 1]) == prefix]
        banned.append(seen)
    return banned


def process_scores(scores: torch.Tensor, sequences: torch.Tensor, config: Seq2SeqConfig) -> torch.Tensor:
    if config.no_repeat_ngram_size:
        for row, tokens in enumerate(banned_ngram_tokens(sequences, config.no_repeat_ngram_size)):
            if tokens:
                scores[row, tokens] = float("-inf")
    return scores


class _Decoder:
    """Steps the decoder: with a cache feeds only the newest token, else the whole prefix."""

    def __init__(self, model: nn.Module, memory: torch.Tensor, attention_mask: torch.Tensor | None,
                 max_len: int, use_cache: bool) -> None:
        self.model, self.memory, self.attention_mask = model, memory, attention_mask
        # a prefix-tuning adapter's n keys/values take the first n slots (llmzoo.peft.prefix_tuning)
        virtual = getattr(model, "virtual_tokens", None)
        prefix = virtual.n_tokens if virtual is not None and virtual.kind == "prefix" and not virtual.disabled else 0
        self.cache = Cache.for_model(model, memory.shape[0], prefix + max_len, memory.dtype) if use_cache else None

    def next_logits(self, sequences: torch.Tensor) -> torch.Tensor:
        """sequences (N, t) -> next-token logits (N, V) in fp32."""
        ids = sequences[:, -1:] if self.cache is not None and self.cache.seq_length > 0 else sequences
        _, logits = self.model.decode(ids, self.memory, attention_mask=self.attention_mask, cache=self.cache)
        if self.cache is not None:
            self.cache.advance(ids.shape[1])
        return logits[:, -1].float()

    def reorder(self, index: torch.Tensor) -> None:
        self.memory = self.memory.index_select(0, index)
        if self.attention_mask is not None:
            self.attention_mask = self.attention_mask.index_select(0, index)
        if self.cache is not None:
            self.cache.reorder(index)


def _special_ids(model: nn.Module, eos_token_id, pad_token_id, decoder_start_token_id):
    c = model.config
    eos = c.eos_token_id if eos_token_id is None else eos_token_id
    pad = c.pad_token_id if pad_token_id is None else pad_token_id
    start = c.decoder_start_token_id if decoder_start_token_id is None else decoder_start_token_id
    if start is None:
        raise LlmzooError("the model config has no decoder_start_token_id (T5 starts from its pad id, BART from its "
                          "eos id); set it in the config (llmzoo_config.json) or pass decoder_start_token_id=")
    if pad is None:
        pad = eos if eos is not None else 0
    return eos, pad, start


@torch.no_grad()
def generate_seq2seq(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    config: Seq2SeqConfig | None = None,
    *,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    decoder_start_token_id: int | None = None,
    generator: torch.Generator | None = None,
    **overrides,
) -> torch.Tensor:
    """input_ids (B, S) -> generated decoder ids (B, 1 + n), starting with the start token.
    Rows that finish early are padded with pad_token_id. Keyword overrides set Seq2SeqConfig fields."""
    if getattr(model, "config", None) is None or model.config.arch != "encoder_decoder":
        raise LlmzooError("generate_seq2seq needs an encoder-decoder model (T5, BART, ...)")
    config = Seq2SeqConfig(**{**(config.__dict__ if config else {}), **overrides})
    eos, pad, start = _special_ids(model, eos_token_id, pad_token_id, decoder_start_token_id)
    memory = model.encode(input_ids, attention_mask)
    if config.num_beams > 1 and config.repetition_penalty != 1.0:
        raise LlmzooError("repetition_penalty is not supported with beam search; use num_beams=1")
    if config.num_beams > 1:
        return _beam_search(model, memory, attention_mask, config, eos, pad, start)
    return _greedy_or_sample(model, memory, attention_mask, config, eos, pad, start, generator)


def _greedy_or_sample(model, memory, attention_mask, config, eos, pad, start, generator) -> torch.Tensor:
    B = memory.shape[0]
    max_len = 1 + config.max_new_tokens
    decoder = _Decoder(model, memory, attention_mask, max_len, config.use_cache)
    sequences = torch.full((B, 1), start, dtype=torch.long, device=memory.device)
    unfinished = torch.ones(B, dtype=torch.bool, device=memory.device)
    sampling = config.sampling
    seen = None
    if sampling.repetition_penalty != 1.0:  # the decoder's own tokens, start token included
        seen = torch.zeros(B, model.config.vocab_size, dtype=torch.bool, device=memory.device)
        seen[:, start] = True
    for _ in range(config.max_new_tokens):
        scores = process_scores(decoder.next_logits(sequences), sequences, config)
        token = next_tokens(scores, sampling, seen, generator)
        token = torch.where(unfinished, token, torch.full_like(token, pad))
        if seen is not None:
            seen[torch.arange(B, device=token.device), token] = True
        sequences = torch.cat((sequences, token[:, None]), dim=1)
        if eos is not None:
            unfinished &= token != eos
        if not bool(unfinished.any()):
            break
    return sequences


def _beam_search(model, memory, attention_mask, config, eos, pad, start) -> torch.Tensor:
    B, n = memory.shape[0], config.num_beams
    device = memory.device
    max_len = 1 + config.max_new_tokens
    prompt_len = 1
    expand = torch.arange(B, device=device).repeat_interleave(n)
    decoder = _Decoder(model, memory.index_select(0, expand),
                       None if attention_mask is None else attention_mask.index_select(0, expand),
                       max_len, config.use_cache)
    # 2n candidates per step, so n can keep running even when the best n all end here.
    K = 2 * n
    running = torch.full((B, n, max_len), pad, dtype=torch.long, device=device)
    running[:, :, 0] = start
    running_scores = torch.full((B, n), NEG, device=device)
    running_scores[:, 0] = 0.0  # only the first beam is live at the start (the others are copies)
    finished = running.clone()
    finished_scores = torch.full((B, n), NEG, device=device)
    finished_len = torch.zeros((B, n), dtype=torch.long, device=device)
    is_finished = torch.zeros((B, n), dtype=torch.bool, device=device)
    improvable = torch.ones((B, 1), dtype=torch.bool, device=device)
    top_n = torch.arange(K, device=device) < n
    batch_offset = torch.arange(B, device=device)[:, None] * n
    cur_len = prompt_len
    while True:
        flat = running[:, :, :cur_len].reshape(B * n, cur_len)
        log_probs = torch.log_softmax(decoder.next_logits(flat), dim=-1)
        log_probs = process_scores(log_probs, flat, config)
        V = log_probs.shape[-1]
        totals = (log_probs.view(B, n, V) + running_scores[:, :, None]).view(B, n * V)
        cand_scores, cand_index = totals.topk(K, dim=-1)  # (B, K)
        cand_beam, cand_token = cand_index // V, cand_index % V
        candidates = running.gather(1, cand_beam[:, :, None].expand(B, K, max_len)).clone()
        candidates[:, :, cur_len] = cand_token
        hits_stop = torch.full_like(cand_token, cur_len + 1 >= max_len, dtype=torch.bool)
        if eos is not None:
            hits_stop |= cand_token == eos

        # the best n candidates that did not stop keep running
        live_scores = cand_scores + hits_stop.float() * NEG
        keep = live_scores.topk(n, dim=-1).indices  # (B, n)
        running = candidates.gather(1, keep[:, :, None].expand(B, n, max_len))
        running_scores = live_scores.gather(1, keep)
        source_beam = cand_beam.gather(1, keep)

        # stopped candidates among the top n may enter the finished set, with the length penalty
        just_finished = hits_stop & top_n[None, :]
        scored = cand_scores / float(cur_len + 1 - prompt_len) ** config.length_penalty
        full = is_finished.all(-1, keepdim=True) & (config.early_stopping is True)
        scored = scored + full.float() * NEG + (~improvable).float() * NEG + (~just_finished).float() * NEG
        merged_scores = torch.cat((finished_scores, scored), dim=1)
        best = merged_scores.topk(n, dim=-1).indices
        finished = torch.cat((finished, candidates), dim=1).gather(1, best[:, :, None].expand(B, n, max_len))
        finished_scores = merged_scores.gather(1, best)
        finished_len = torch.cat((finished_len, torch.full_like(cand_token, cur_len + 1)), dim=1).gather(1, best)
        is_finished = torch.cat((is_finished, just_finished), dim=1).gather(1, best)

        decoder.reorder((source_beam + batch_offset).reshape(-1))
        cur_len += 1
        # can a running beam still beat the worst finished one?
        if config.early_stopping == "never" and config.length_penalty > 0.0:
            best_len = max_len - prompt_len
        else:
            best_len = cur_len - prompt_len
        best_running = running_scores[:, :1] / float(best_len) ** config.length_penalty
        worst_finished = torch.where(is_finished, finished_scores.min(1, keepdim=True).values,
                                     torch.full_like(finished_scores, NEG))
        improvable = improvable & (best_running > worst_finished).any(-1, keepdim=True)
        all_done = bool(is_finished.all()) and config.early_stopping is True
        if not bool(improvable.any()) or all_done or bool(hits_stop.all()):
            break
    out_len = int(finished_len[:, 0].max())
    return finished[:, 0, :out_len]


def generate_text(model: nn.Module, tokenizer, texts: list[str], *, max_new_tokens: int, temperature: float = 0.0,
                  top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                  seed: int | None = None, add_special_tokens: bool = True) -> list[str]:
    """Encode texts with the tokenizer, generate (greedy at temperature 0, else sampled), decode
    without special tokens: what `llmzoo.generate` runs for an encoder-decoder."""
    from llmzoo.sentence_embedding import pad_batch

    c = model.config
    if c.position == "learned":  # the decoder's learned table has max_seq_len rows, start token included
        max_new_tokens = min(max_new_tokens, c.max_seq_len - 1)
    config = Seq2SeqConfig(max_new_tokens=max_new_tokens, do_sample=temperature > 0, temperature=temperature or 1.0,
                           top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
    encoded = [tokenizer.encode(t, add_special_tokens=add_special_tokens) for t in texts]
    if any(len(ids) == 0 for ids in encoded):
        raise LlmzooError("prompt is empty: give at least one token of text")
    pad = c.pad_token_id if c.pad_token_id is not None else 0
    ids, mask = pad_batch(encoded, pad, c.max_seq_len)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    out = generate_seq2seq(model, ids.to(device), mask.to(device), config, generator=generator)
    return [tokenizer.decode(row[1:].tolist(), skip_special_tokens=True) for row in out]


def complete(model: nn.Module, tokenizer, prompt: str | list[str], *, max_new_tokens: int, temperature: float,
             top_k: int | None, top_p: float | None, repetition_penalty: float, seed: int | None,
             stop: list[str] | None, stream: Callable[[str], None] | None, chat: bool, system: str | None,
             prompt_has_special_tokens: bool) -> str | list[str]:
    """`llmzoo.generate` for an encoder-decoder: the prompt is the source, the reply the decoder's text.
    The reply is cut at the first stop string; `stream` receives it once, when it is complete."""
    from llmzoo.infer.generate import prompt_texts

    single = isinstance(prompt, str)
    texts = prompt_texts(tokenizer, prompt, stream=stream, chat=chat, system=system)
    replies = generate_text(model, tokenizer, texts, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                            add_special_tokens=not (chat or prompt_has_special_tokens))
    for s in (s for s in (stop or []) if s):
        replies = [r[:r.index(s)] if s in r else r for r in replies]
    if stream is not None:
        stream(replies[0])
    return replies[0] if single else replies
