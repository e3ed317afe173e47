"""Speculative decoding: draft k tokens cheaply, verify them with one forward of the target model.

A drafter proposes up to k tokens d1..dk after the committed sequence S. The target runs one forward
over [the tokens of S it has not seen, d1..dk] and so gets its next-token distributions p1..p(k+1)
for every drafted position at once. Drafts are kept while the target agrees; the first disagreement
is replaced by the target's own token, and if all k are kept the target's (k+1)-th distribution gives
one more. Each round costs one target forward and yields 1..k+1 tokens.

- Greedy: keep di while it equals argmax pi, then take the target's argmax: the output is plain
  greedy decoding's (up to float rounding of a k+1-token forward versus k+1 one-token forwards).
- Sampling (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding";
  Chen et al. 2023, "Accelerating LLM Decoding with Speculative Sampling"): keep di with probability
  min(1, pi(di) / qi(di)), where q is the drafter's distribution; on rejection sample from
  normalize(max(0, pi - qi)). Each emitted token is then distributed exactly as pi. p and q are the
  *processed* distributions (repetition penalty, temperature, top-k, top-p: llmzoo.infer.sampling),
  so speculative sampling draws from what plain sampling draws from.

Drafters:
- `PromptLookup` (Saxena 2023, "Prompt Lookup Decoding"): find the sequence's last n-gram earlier
  in prompt + generated text and propose the tokens that followed it. Deterministic: q is a point
  mass, so a draft is kept with probability p(d) and a rejection samples p with d removed.
- `DraftModel`: any llmzoo decoder with the target's vocabulary, with its own Cache (e.g.
  `truncated_draft(model, n)`, the target's first n layers, sharing their weights).

The Cache (llmzoo.infer.cache) is what makes verification cheap: a forward writes its T tokens but
only the caller advances the cache, so a round advances by the tokens it keeps and the rejected
drafts' slots are overwritten next round. Batch size 1 only: rows would accept different numbers of
drafts and the cache keeps one sequence length for all rows.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import Cache
from llmzoo.infer.generate import ContextLengthWarning, Generated, _context_limit, _virtual_positions
from llmzoo.infer.sampling import SamplingConfig, penalised_logits, sampling_probs

PROMPT_LOOKUP = "prompt-lookup"
DEFAULT_DRAFT_TOKENS = {"prompt-lookup": 10, "model": 5}


@dataclass
class SpeculativeStats:
    drafted: int = 0  # tokens the drafter proposed
    accepted: int = 0  # of those, tokens the target kept
    target_forwards: int = 0  # forwards of the target model (one per round)
    new_tokens: int = 0  # tokens generated (what plain decoding would need as many forwards for)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    def summary(self) -> str:
        return (f"accepted {self.accepted} of {self.drafted} drafted tokens ({100 * self.acceptance_rate:.0f}%), "
                f"{self.target_forwards} target forwards for {self.new_tokens} tokens")


@dataclass
class SpeculativeGenerated(Generated):
    stats: SpeculativeStats = field(default_factory=SpeculativeStats)


class Drafter(Protocol):
    def propose(self, tokens: list[int], k: int, seen: torch.Tensor | None) -> tuple[list[int], torch.Tensor | None]:
        """Up to k tokens to follow `tokens`, and the (n, V) distributions they were drawn from
        (None: chosen deterministically, a point mass)."""
        ...

    def keep(self, n: int) -> None:
        """The first n tokens of the last `tokens` + proposal are the committed sequence's."""
        ...


# --- drafters ---------------------------------------------------------------------------------------


def lookup_continuation(tokens: list[int], k: int, max_ngram: int = 3, min_ngram: int = 1) -> list[int]:
    """Up to k tokens that followed the earliest earlier occurrence of the sequence's last n-gram,
    trying the longest n first (a longer match predicts better); [] when none occurs."""
    total = len(tokens)
    for n in range(min(max_ngram, total - 1), min_ngram - 1, -1):
        tail = tokens[total - n:]
        first = tail[0]
        for start in range(total - n):  # the continuation tokens[start + n:] is never empty
            if tokens[start] == first and tokens[start:start + n] == tail:
                return tokens[start + n:start + n + k]
    return []


class PromptLookup:
    """Prompt lookup decoding (Saxena 2023): drafts copied from the text itself, no draft model."""

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1) -> None:
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def propose(self, tokens: list[int], k: int, seen: torch.Tensor | None) -> tuple[list[int], None]:
        return lookup_continuation(tokens, k, self.max_ngram, self.min_ngram), None

    def keep(self, n: int) -> None:
        pass


class DraftModel:
    """A small decoder proposing tokens autoregressively from its own cache, with the target's
    sampling settings (so its q is as close to the target's p as it can be)."""

    def __init__(self, model: nn.Module, sampling: SamplingConfig, capacity: int,
                 generator: torch.Generator | None) -> None:
        self.model, self.sampling = model, sampling
        self.device = next(model.parameters()).device
        # Tokens of the sequence it may hold: its own context, or what the target generates at most.
        self.capacity = min(_context_limit(model), capacity)
        self.cache = Cache.for_model(model, 1, _virtual_positions(model) + self.capacity)
        self.held = 0  # tokens of the sequence in its cache (past any virtual tokens of an adapter)
        self.generator = generator

    def propose(self, tokens: list[int], k: int, seen: torch.Tensor | None) -> tuple[list[int], torch.Tensor | None]:
        # Drafting k tokens leaves len(tokens) + k - 1 in its cache (the last draft is never fed).
        k = min(k, self.capacity - len(tokens) + 1)
        if k <= 0:
            return [], None
        seen = seen.to(self.device).clone() if seen is not None else None
        ids = torch.tensor([tokens[self.held:]], device=self.device)
        drafts, dists = [], []
        for i in range(k):
            if i:
                ids = torch.tensor([[drafts[-1]]], device=self.device)
            logits = self.model(ids, cache=self.cache, logits_to_keep=1).logits[:, -1]
            self.cache.advance(ids.shape[1])
            self.held += ids.shape[1]
            if self.sampling.greedy:
                token = int(penalised_logits(logits, self.sampling, seen).argmax(-1))
            else:
                q = sampling_probs(logits, self.sampling, seen)
                token = int(torch.multinomial(q, 1, generator=self.generator))
                dists.append(q[0])
            drafts.append(token)
            if seen is not None:
                seen[0, token] = True
        return drafts, torch.stack(dists) if dists else None

    def keep(self, n: int) -> None:
        if n < self.held:  # drop the slots of rejected drafts
            self.cache.crop(self.cache.seq_length - (self.held - n))
            self.held = n


def truncated_draft(model: nn.Module, n_layers: int) -> nn.Module:
    """The target's first n_layers (and its embeddings, final norm and head) as a draft model that
    shares their weights: no copy, no extra memory. Early layers of a trained model already predict
    many easy tokens (layer-skipping self-speculation, e.g. Zhang et al. 2023 "Draft & Verify"). An
    adapter's virtual tokens (prompt/prefix tuning) are not carried over: the draft is the base model."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.ModuleList) or getattr(model, "lm_head", None) is None:
        raise LlmzooError(f"a truncated draft needs a decoder language model; {model.config.name} is not one")
    total = model.config.n_layers
    if isinstance(n_layers, bool) or not isinstance(n_layers, numbers.Integral) or not 1 <= n_layers < total:
        raise LlmzooError(f"a truncated draft keeps 1 to {total - 1} of {model.config.name}'s {total} layers; "
                          f"got {n_layers!r}")
    # A new module of the same class over the same submodules: DecoderLM.forward runs
    # config.n_layers layers through self.layer(i), so a shorter layer list and config are all it needs.
    draft = type(model).__new__(type(model))
    nn.Module.__init__(draft)
    fresh = set(vars(draft))
    for name, value in vars(model).items():
        # Plain public attributes (config, ...); private ones are per-model caches (a compiled
        # decode step for the full stack) that must not serve the shorter one.
        if name not in fresh and not name.startswith("_"):
            setattr(draft, name, value)
    draft._parameters.update(model._parameters)
    draft._buffers.update(model._buffers)
    draft._non_persistent_buffers_set = set(model._non_persistent_buffers_set)
    draft._modules.update((k, v) for k, v in model._modules.items() if k != "virtual_tokens")
    draft.training = model.training
    if not model.config.share_layers:  # shared layers (ALBERT-style): one module serves every index
        draft.layers = nn.ModuleList(list(layers)[:n_layers])
    draft.config = model.config.replace(n_layers=int(n_layers))
    return draft


def resolve_drafter(model: nn.Module, speculative, sampling: SamplingConfig, capacity: int,
                    generator: torch.Generator | None) -> Drafter:
    """`speculative` as generate() takes it: "prompt-lookup", "layers:N" (the target's first N
    layers) or a draft model. `generator`: the target's; a draft on another device gets its own."""
    if isinstance(speculative, str):
        if speculative == PROMPT_LOOKUP:
            return PromptLookup()
        if speculative.startswith("layers:"):
            n = speculative.removeprefix("layers:")
            if not n.isdigit():
                raise LlmzooError(f"speculative={speculative!r}: layers:N needs a whole number N, e.g. layers:2")
            return DraftModel(truncated_draft(model, int(n)), sampling, capacity, generator)
        raise LlmzooError(f"speculative={speculative!r} is not known; use {PROMPT_LOOKUP!r}, 'layers:N' (the model's "
                          f"first N layers) or a draft model with the same vocabulary")
    if not isinstance(speculative, nn.Module) or not hasattr(speculative, "config"):
        raise LlmzooError(f"speculative must be {PROMPT_LOOKUP!r}, 'layers:N' or an llmzoo draft model, "
                          f"got {type(speculative).__name__}")
    check_draft_model(model, speculative)
    device = next(speculative.parameters()).device
    if generator is not None and generator.device != device:
        # Its draws must be independent of the target's accept/reject draws: a generator seeded
        # alike would replay the same uniforms (a draft drawn by u, then kept if u' = u < p/q),
        # which biases the output; so a seed from the target's stream, not the same seed.
        seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))
        generator = torch.Generator(device=device).manual_seed(seed)
    return DraftModel(speculative, sampling, capacity, generator)


def check_draft_model(model: nn.Module, draft: nn.Module) -> None:
    c, d = model.config, draft.config
    if getattr(d, "arch", "decoder") != "decoder" or getattr(draft, "lm_head", None) is None:
        raise LlmzooError(f"the draft model {d.name} is not a decoder language model; speculative decoding needs "
                          f"one (or use 'prompt-lookup')")
    if d.vocab_size != c.vocab_size:
        raise LlmzooError(f"the draft model {d.name} has a vocabulary of {d.vocab_size} tokens, {c.name} of "
                          f"{c.vocab_size}; a draft must share the target's tokenizer")


def check_same_tokenizer(tokenizer, draft_tokenizer, draft_name: str) -> None:
    """A draft's token ids mean the target's tokens only if both tokenizers have one vocabulary."""
    if tokenizer.get_vocab() != draft_tokenizer.get_vocab():
        raise LlmzooError(f"the draft model {draft_name} has another tokenizer than the target; a draft must "
                          f"share the target's vocabulary")


def check_num_draft_tokens(k) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise LlmzooError(f"num_draft_tokens must be a whole number >= 1, got {k!r}")
    return int(k)


# --- verification -------------------------------------------------------------------------------------


def _accept(logits: torch.Tensor, drafts: list[int], q: torch.Tensor | None, sampling: SamplingConfig,
            seen: torch.Tensor | None, generator: torch.Generator | None) -> tuple[int, int]:
    """Target logits (k+1, V) over the drafted positions -> (drafts kept m, the target's token after them)."""
    k = len(drafts)
    if seen is not None:  # position i has also seen d1..di (repetition penalty as plain decoding applies it)
        seen = seen.expand(k + 1, -1).clone()
        for i, token in enumerate(drafts):
            seen[i + 1:, token] = True
    if sampling.greedy:
        target = penalised_logits(logits, sampling, seen).argmax(-1).tolist()
        m = next((i for i, token in enumerate(drafts) if token != target[i]), k)
        return m, target[m]
    p = sampling_probs(logits, sampling, seen)
    q = q.to(p.device) if q is not None else None
    for i, token in enumerate(drafts):
        q_token = 1.0 if q is None else q[i, token]
        u = torch.rand((), device=p.device, generator=generator)
        if u * q_token < p[i, token]:  # kept with probability min(1, p/q)
            continue
        if q is None:  # point mass: max(0, p - q) is p without the drafted token
            residual = p[i].clone()
            residual[token] = 0
        else:
            residual = (p[i] - q[i]).clamp_min(0)
        if not bool(residual.sum() > 0):  # only by float rounding (p == q); p is then the right law
            residual = p[i]
        return i, int(torch.multinomial(residual, 1, generator=generator))
    return k, int(torch.multinomial(p[k], 1, generator=generator))


@torch.inference_mode()
def speculative_generate_ids(
    model: nn.Module,
    prompts: list[list[int]],
    *,
    speculative,
    num_draft_tokens: int | None = None,
    max_new_tokens: int = 128,
    sampling: SamplingConfig = SamplingConfig(),
    eos_ids: set[int] | frozenset[int] = frozenset(),
    pad_id: int = 0,
    seed: int | None = None,
    on_token: Callable[[int, int], bool] | None = None,
) -> list[SpeculativeGenerated]:
    """generate_ids with speculative decoding (module docstring), for one prompt; same arguments,
    same results' meaning, plus `stats` on the result. pad_id is unused (no padding with one row)."""
    if len(prompts) != 1:
        raise LlmzooError(f"speculative decoding generates for one prompt at a time, got {len(prompts)}; "
                          f"pass a single prompt or drop speculative=")
    prompt = list(prompts[0])
    if not prompt:
        raise LlmzooError("prompt is empty: give at least one token of text")
    if max_new_tokens < 1:
        raise LlmzooError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    limit = _context_limit(model)  # the same context arithmetic as generate_ids
    if len(prompt) >= limit:
        raise LlmzooError(f"prompt of {len(prompt)} tokens does not fit this model's context of {limit} tokens; "
                          f"shorten it")
    clamped = max_new_tokens > limit - len(prompt)
    max_new_tokens = min(max_new_tokens, limit - len(prompt))
    device = next(model.parameters()).device
    # One random stream for the draft's samples and the accept/reject draws (see resolve_drafter).
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    drafter = resolve_drafter(model, speculative, sampling, len(prompt) + max_new_tokens, generator)
    if num_draft_tokens is None:
        num_draft_tokens = DEFAULT_DRAFT_TOKENS["prompt-lookup" if isinstance(drafter, PromptLookup) else "model"]
    k_max = check_num_draft_tokens(num_draft_tokens)
    seen = None
    if sampling.repetition_penalty != 1.0:
        seen = torch.zeros(1, model.config.vocab_size, dtype=torch.bool, device=device)
        seen[0, torch.tensor(prompt, device=device)] = True
    cache = Cache.for_model(model, 1, _virtual_positions(model) + len(prompt) + max_new_tokens)
    stats = SpeculativeStats()
    result = SpeculativeGenerated([], "length", stats)
    sequence, fed = prompt, 0  # committed tokens; how many of them the target's cache holds
    sampled = 0  # tokens taken from the target (EOS included): max_new_tokens bounds these, as in generate_ids
    while sampled < max_new_tokens:
        # A round yields up to k + 1 tokens and writes slots up to len(sequence) + k - 1: both fit.
        k = min(k_max, max_new_tokens - sampled - 1)
        drafts, q = drafter.propose(sequence, k, seen) if k > 0 else ([], None)
        stats.drafted += len(drafts)
        inputs = torch.tensor([sequence[fed:] + drafts], device=device)
        logits = model(inputs, cache=cache, logits_to_keep=len(drafts) + 1).logits[0]
        stats.target_forwards += 1
        m, token = _accept(logits, drafts, q, sampling, seen, generator)
        stats.accepted += m
        cache.advance(inputs.shape[1] - len(drafts) + m)  # the unseen tokens and the kept drafts
        fed = len(sequence) + m
        drafter.keep(fed)
        for new in drafts[:m] + [token]:
            sampled += 1
            if new in eos_ids:
                result.finish_reason = "eos"
                break
            result.token_ids.append(new)
            if on_token is not None and on_token(0, new):
                result.finish_reason = "stop"
                break
            if seen is not None:
                seen[0, new] = True
        if result.finish_reason != "length":
            break
        sequence = sequence + drafts[:m] + [token]
    stats.new_tokens = len(result.token_ids)
    if clamped and result.finish_reason == "length":
        warnings.warn(ContextLengthWarning(
            f"generation stopped at the model's context length of {limit} tokens "
            f"({len(prompt)} prompt + {max_new_tokens} new), before max_new_tokens"), stacklevel=3)
    return [result]


def load_draft(source: str, model: nn.Module, tokenizer, dtype: torch.dtype | None = None):
    """What `llmzoo generate --speculative SOURCE` means: "prompt-lookup" and "layers:N" as they are,
    anything else a model source loaded as the draft; its tokenizer, where it has one, must be the
    target's (the same vocabulary size alone could still map ids to other tokens)."""
    if source == PROMPT_LOOKUP or source.startswith("layers:"):
        return source
    import llmzoo

    draft = llmzoo.load(source, dtype=dtype)
    check_draft_model(model, draft)
    try:
        draft_tokenizer = llmzoo.load_tokenizer(source)
    except LlmzooError:
        return draft  # a bare checkpoint: only its vocabulary size can be checked
    check_same_tokenizer(tokenizer, draft_tokenizer, source)
    return draft
