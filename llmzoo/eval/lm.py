"""`EvalLM`: answers the harness's requests (llmzoo.eval.requests) with an llmzoo model.

Tokenization follows lm-eval-harness's HF backend (lm_eval/api/model.py `_encode_pair`,
lm_eval/models/huggingface.py) so per-request loglikelihoods match it:
- decoder: trailing spaces of the context move to the continuation; the pair is encoded as
  one string and the continuation is the tokens past the context's own encoding (so a
  merge across the boundary is scored as lm-eval scores it); an empty context is replaced
  by the prefix token (BOS, else EOS);
- encoder-decoder: context and continuation are encoded separately; the encoder reads the
  context, the decoder is teacher-forced on the continuation (no EOS is scored);
- inputs longer than the context window keep their last max_seq_len + 1 tokens;
- rolling loglikelihood: disjoint windows of max_seq_len tokens, the first one after the
  prefix token (lm-eval's `get_rolling_token_windows` with context_len=1).

Batching: requests are sorted by length, longest first (a batch that does not fit in memory
fails at once, and rows of similar length waste little padding), right-padded without an
attention mask -- in a causal decoder a real token never attends to the padding after it, so
each row's logits equal its unbatched ones.

Shared contexts: requests whose context tokens are the same but whose continuations differ
(HellaSwag's four endings, PIQA's two solutions) run the context once: a batch of contexts
fills a KV cache, which is repeated for each continuation, and the continuations run on top of
it (`_score_shared`). A wave holds WAVE_BATCHES * batch_size contexts, run in forwards of
`batch_size` rows, and all their continuations, which run in length-sorted sub-batches of
`batch_size` rows so that a few long endings do not pad all the short ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.eval.requests import (
    GenerateUntil,
    Loglikelihood,
    LoglikelihoodResult,
    LoglikelihoodRolling,
    RollingResult,
)
from llmzoo.models.decoder import DecoderLM

Progress = Callable[[int], None]  # called with the number of requests just answered

# Shared contexts are scored in waves of WAVE_BATCHES * batch_size contexts: the wave's
# continuations are sorted by length before they are cut into batches, so a wider pool of
# lengths pads less (HellaSwag, first 200 documents: 16.9k positions fed instead of 19.4k).
# One wave's KV cache holds them all (64 contexts of ~100 slots: ~300 MB for SmolLM2-135M).
WAVE_BATCHES = 8


def check_lm_head(model: nn.Module) -> None:
    """Loglikelihood needs next-token distributions: a decoder or encoder-decoder with an LM head."""
    config = model.config
    arch = getattr(config, "arch", "decoder")
    has_head = getattr(model, "lm_head", None) is not None or getattr(config, "head", "lm") == "lm"
    if arch not in ("decoder", "encoder_decoder") or not has_head:
        kind = f"an {arch}" if arch[0] in "aeiou" else f"a {arch}"
        raise LlmzooError(
            f"{config.name} is {kind} model with head {getattr(config, 'head', None)!r}, not a language-model head; "
            f"loglikelihood and generation tasks need a decoder or encoder-decoder with head='lm' "
            f"(masked-LM pseudo-likelihood is not supported)")


class EvalLM:
    def __init__(self, model: nn.Module, tokenizer, batch_size: int = 8) -> None:
        check_lm_head(model)
        if batch_size < 1:
            raise LlmzooError(f"--batch-size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.seq2seq = model.config.arch == "encoder_decoder"
        # a prompt/prefix adapter's n virtual tokens take the first n positions (llmzoo.peft.virtual_tokens)
        virtual = getattr(model, "virtual_tokens", None)
        self.virtual = virtual.n_tokens if virtual is not None else 0
        self.max_length = model.config.max_seq_len - self.virtual
        self.device = next(model.parameters()).device
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.prefix_token_id = prefix if prefix is not None else 0

    # -- tokenization ------------------------------------------------------------------------

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if context == "":
            cont = self.tokenizer.encode(continuation)
            return [self.prefix_token_id], cont
        spaces = len(context) - len(context.rstrip())
        if spaces:  # "Answer: " + "A" tokenizes as "Answer:" + " A", as the model saw it in training
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if self.seq2seq:
            return self.tokenizer.encode(context), self.tokenizer.encode(continuation, add_special_tokens=False)
        whole = self.tokenizer.encode(context + continuation)
        ctx = self.tokenizer.encode(context)
        return whole[:len(ctx)], whole[len(ctx):]

    # -- requests ----------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[Loglikelihood],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        pairs = [self.encode_pair(r.context, r.continuation) for r in requests]
        return self.score_tokens(pairs, progress)

    def loglikelihood_rolling(self, requests: Sequence[LoglikelihoodRolling],
                              progress: Progress | None = None) -> list[RollingResult]:
        windows: list[tuple[list[int], list[int]]] = []
        owner: list[int] = []
        for i, r in enumerate(requests):
            tokens = self.tokenizer.encode(r.text)
            for w in rolling_windows(tokens, self.prefix_token_id, self.max_length):
                windows.append(w)
                owner.append(i)
        scored = self.score_tokens(windows, None)
        totals = [0.0] * len(requests)
        counts = [0] * len(requests)
        for i, s in zip(owner, scored):
            totals[i] += s.logprob
            counts[i] += s.n_tokens
        if progress is not None:
            progress(len(requests))
        return [RollingResult(t, n) for t, n in zip(totals, counts)]

    def generate_until(self, requests: Sequence[GenerateUntil],
                       progress: Progress | None = None) -> list[list[str]]:
        """Greedy requests run in left-padded batches of batch_size (llmzoo.eval.generation)."""
        from llmzoo.eval.generation import generate_until

        return generate_until(self.model, self.tokenizer, requests, self.batch_size, progress)

    # -- scoring -----------------------------------------------------------------------------

    @torch.inference_mode()
    def score_tokens(self, pairs: Sequence[tuple[list[int], list[int]]],
                     progress: Progress | None = None) -> list[LoglikelihoodResult]:
        """Summed log-probability of each continuation given its context, and is_greedy.

        Decoder requests whose model input is the same token sequence (MMLU's " A".." D" after one
        prompt: the input is the prompt, each choice is one token) share one forward pass, as
        lm-eval's HF backend shares them; each is still scored on its own continuation."""
        if any(len(cont) == 0 for _, cont in pairs):
            raise LlmzooError("a continuation encodes to no tokens; nothing to score")
        longest = max((len(cont) for _, cont in pairs), default=0)
        if longest > self.max_length:
            raise LlmzooError(f"a continuation of {longest} tokens does not fit this model's context of "
                              f"{self.max_length} tokens")
        groups: dict[object, list[int]] = {}
        for i, (ctx, cont) in enumerate(pairs):
            key = i if self.seq2seq else tuple(self._decoder_input(ctx, cont))
            groups.setdefault(key, []).append(i)
        unique = list(groups.values())
        results: list[LoglikelihoodResult | None] = [None] * len(pairs)
        if self._can_share_context():
            unique = self._score_shared_contexts(pairs, unique, results, progress)
        order = sorted(range(len(unique)), key=lambda g: -sum(map(len, pairs[unique[g][0]])))
        for start in range(0, len(order), self.batch_size):
            batch = [unique[g] for g in order[start:start + self.batch_size]]
            if self.seq2seq:
                scored = [[r] for r in self._score_seq2seq([pairs[grp[0]] for grp in batch])]
            else:
                scored = self._score_decoder([[pairs[i] for i in grp] for grp in batch])
            for grp, rs in zip(batch, scored):
                for i, r in zip(grp, rs):
                    results[i] = r
            if progress is not None:
                progress(sum(len(grp) for grp in batch))
        return results  # type: ignore[return-value]

    def _can_share_context(self) -> bool:
        """A context run once into a right-padded KV cache gives each continuation the logits of
        its own full row only where attention depends on real positions alone: rotary or learned
        positions (taken from the mask), no ALiBi / relative bias / Transformer-XL terms / sliding window, which count
        the padding between a short context and its continuation. Not for SSM layers (Mamba): their
        state folds in every token a row is fed, padding included."""
        model = self.model
        return (isinstance(model, DecoderLM) and model.lm_head is not None and not self.seq2seq
                and model.config.sliding_window is None and not self.virtual  # its cache has no room for them
                and not hasattr(model, "alibi_slopes") and not hasattr(model, "relative_bias")
                and not hasattr(model, "xl_positions")  # Transformer-XL: scores depend on the distance too
                and not model.config.has_mixer("mamba"))

    def _score_shared_contexts(self, pairs: Sequence[tuple[list[int], list[int]]], unique: list[list[int]],
                               results: list, progress: Progress | None) -> list[list[int]]:
        """Score the groups (of identical inputs) that share their context tokens with another
        group; return the groups left for the plain path."""
        families: dict[tuple[int, ...], list[list[int]]] = {}
        for grp in unique:
            ctx, cont = pairs[grp[0]]
            if len(ctx) + len(cont) - 1 <= self.max_length:  # not truncated: the context is a true prefix
                families.setdefault(tuple(ctx), []).append(grp)
        shared = [fam for fam in families.values() if len(fam) > 1]
        if not shared:
            return unique
        # longest shared prefixes first, as the plain path: a batch that does not fit fails at once;
        # and prefixes of similar length run together, so their forwards pad little
        shared.sort(key=lambda fam: (-len(_common_prefix([self._decoder_input(*pairs[g[0]]) for g in fam])),
                                     -max(len(pairs[g[0]][1]) for g in fam)))
        wave = self.batch_size * WAVE_BATCHES
        for start in range(0, len(shared), wave):
            batch = shared[start:start + wave]
            scored = self._score_shared([[[pairs[i] for i in grp] for grp in fam] for fam in batch])
            for fam, fam_scores in zip(batch, scored):
                for grp, rs in zip(fam, fam_scores):
                    for i, r in zip(grp, rs):
                        results[i] = r
            if progress is not None:
                progress(sum(len(grp) for fam in batch for grp in fam))
        done = {id(grp) for fam in shared for grp in fam}
        return [grp for grp in unique if id(grp) not in done]

    def _score_shared(self, families: list[list[list[tuple[list[int], list[int]]]]]) -> list[list[list[LoglikelihoodResult]]]:
        """families[f][g]: the requests of group g (one input row) under context f. The longest
        prefix all of a family's rows share (its context, and more where the choices begin alike:
        PIQA's two solutions often differ in a word or two) runs once (right-padded, causal) into
        one cache; each row's rest then runs on a copy of its prefix's cache row, masked so it sees
        only the real prefix tokens, at positions that continue it. A position's state depends only
        on the tokens before it, so the scores are those of the whole rows."""
        from llmzoo.infer.cache import Cache

        rows = [[self._decoder_input(*grp[0]) for grp in fam] for fam in families]
        prefixes = [_common_prefix(fam_rows) for fam_rows in rows]  # at least the context
        suffixes = [[row[len(prefix):] for row in fam_rows] for prefix, fam_rows in zip(prefixes, rows)]
        # the prefix's states from its context's last token on predict the continuations' first tokens
        starts = [len(fam[0][0][0]) - 1 for fam in families]
        width = max(map(len, prefixes))
        span = max(len(sfx) for fam in suffixes for sfx in fam)
        cache = Cache.for_model(self.model, len(prefixes), width + span)
        head = self._fill_context_cache(cache, prefixes, starts)
        owner = [f for f, fam in enumerate(suffixes) for _ in fam]
        flat = [sfx for fam in suffixes for sfx in fam]
        h_sfx = self._suffix_hidden(cache, owner, [len(prefixes[f]) for f in owner], width, flat) if span else None
        items, r = [], 0
        for f, fam in enumerate(families):
            for grp in fam:
                h = torch.cat([head[f], h_sfx[r]]) if flat[r] else head[f]
                items.extend((h, cont) for _, cont in grp)
                r += 1
        scored = iter(_score_hidden(self._head_logits, items))
        return [[[next(scored) for _ in grp] for grp in fam] for fam in families]

    def _fill_context_cache(self, cache, contexts: list[list[int]], starts: list[int]) -> list[torch.Tensor]:
        """Run the contexts (longest first) in forwards of batch_size rows, each padded only to
        its own longest, writing their keys/values into rows of the one cache (slots a chunk
        does not reach stay zero and are masked later). Returns each context's final hidden
        states from position starts[i] to its end (n, D): the ones that predict continuation tokens."""
        last = []
        for start in range(0, len(contexts), self.batch_size):
            chunk = contexts[start:start + self.batch_size]
            ids = torch.zeros(len(chunk), max(map(len, chunk)), dtype=torch.long)
            for r, ctx in enumerate(chunk):
                ids[r, :len(ctx)] = torch.tensor(ctx)
            rows = cache.rows(start, start + len(chunk))  # the forward writes through to `cache`
            h = self.model(ids.to(self.device), cache=rows, logits_to_keep=1).last_hidden_state
            last.extend(h[r, starts[start + r]:len(ctx)] for r, ctx in enumerate(chunk))
        cache.advance(max(map(len, contexts)))
        return last

    def _suffix_hidden(self, cache, owner: list[int], ctx_lens: list[int], width: int,
                       suffixes: list[list[int]]) -> list[torch.Tensor]:
        """Final hidden states (len(suffix), D) of each suffix, run on its owner's context-cache row.
        A batch's suffixes range from a few tokens to ~40 (HellaSwag's endings), so padding them
        all to the longest would feed mostly padding: they run in length-sorted sub-batches of
        batch_size rows, each padded only to its own longest. A row's states do not depend on
        the other rows, so the scores are the same."""
        order = sorted(range(len(suffixes)), key=lambda r: -len(suffixes[r]))
        out: list[torch.Tensor | None] = [None] * len(suffixes)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            if not suffixes[rows[0]]:  # the rest are empty: their continuation is one token
                break
            hidden = self._run_suffixes(cache, [owner[r] for r in rows], [ctx_lens[r] for r in rows], width,
                                        [suffixes[r] for r in rows])
            for r, h in zip(rows, hidden):
                out[r] = h
        return out  # type: ignore[return-value]

    def _run_suffixes(self, cache, cache_rows: list[int], ctx_lens: list[int], width: int,
                      suffixes: list[list[int]]) -> list[torch.Tensor]:
        """One forward of suffixes on a copy of the given context-cache rows, masked to see only
        the real context tokens; positions continue each row's own context."""
        dev = self.device
        span = max(map(len, suffixes))
        # a copy of the rows' cache slots up to this forward's end (a new cache; the shared one is kept)
        sub = cache.scratch_rows(torch.tensor(cache_rows, device=dev), width + span)
        ids = torch.zeros(len(suffixes), span, dtype=torch.long)
        mask = torch.zeros(len(suffixes), width + span, dtype=torch.long)
        for r, (n_ctx, sfx) in enumerate(zip(ctx_lens, suffixes)):
            ids[r, :len(sfx)] = torch.tensor(sfx, dtype=torch.long)
            mask[r, :n_ctx] = 1
            mask[r, width:width + len(sfx)] = 1
        h = self.model(ids.to(dev), attention_mask=mask.to(dev), cache=sub, logits_to_keep=1).last_hidden_state
        return [h[r, :len(sfx)] for r, sfx in enumerate(suffixes)]

    def _decoder_input(self, ctx: list[int], cont: list[int]) -> list[int]:
        # keep the end (the continuation is scored); the last token is predicted, never fed
        return (ctx + cont)[-(self.max_length + 1):][:-1]

    def _score_decoder(self, groups: list[list[tuple[list[int], list[int]]]]) -> list[list[LoglikelihoodResult]]:
        """Each group: requests with the same input (one row); returns their scores per group."""
        rows = [self._decoder_input(*grp[0]) for grp in groups]
        # logits at [start, start + len(cont)) of a row predict cont
        spans = [[(len(row) - len(cont), cont) for _, cont in grp] for row, grp in zip(rows, groups)]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, :len(r)] = torch.tensor(r)
        if isinstance(self.model, DecoderLM) and self.model.lm_head is not None:
            # Only positions that predict a continuation token need the LM head, and a long window
            # (rolling perplexity: 8192 tokens x 49k vocabulary = 1.6 GB per row) must not hold
            # them all at once: take the final hidden states and project them in chunks.
            h = self.model(ids.to(self.device), logits_to_keep=1).last_hidden_state  # (B, T, D)
            scored = iter(_score_hidden(self._head_logits, [(h[b, s:s + len(cont)], cont)
                                                            for b, row in enumerate(spans) for s, cont in row]))
            return [[next(scored) for _ in row] for row in spans]
        keep = width - min(s for row in spans for s, _ in row)
        logits = self.model(ids.to(self.device), logits_to_keep=keep).logits  # (B, keep, V)
        off = width - keep
        return [[_continuation_score(None, logits[b, s - off:s - off + len(cont)], cont) for s, cont in row]
                for b, row in enumerate(spans)]

    def _head_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The decoder's own LM head on final hidden states (as DecoderLM.forward applies it)."""
        logits = self.model.lm_head(h)
        multiplier = self.model.config.logit_multiplier
        return logits * multiplier if multiplier is not None else logits

    def _score_seq2seq(self, pairs: list[tuple[list[int], list[int]]]) -> list[LoglikelihoodResult]:
        enc = [ctx[-self.max_length:] for ctx, _ in pairs]
        dec = [cont[:self.max_length] for _, cont in pairs]
        S, T = max(map(len, enc)), max(map(len, dec))
        ids = torch.zeros(len(pairs), S, dtype=torch.long)
        mask = torch.zeros(len(pairs), S, dtype=torch.long)
        labels = torch.full((len(pairs), T), -100, dtype=torch.long)
        for b, (e, d) in enumerate(zip(enc, dec)):
            ids[b, :len(e)] = torch.tensor(e)
            mask[b, :len(e)] = 1
            labels[b, :len(d)] = torch.tensor(d)
        dev = self.device
        logits = self.model(ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).logits
        return [_continuation_score(None, logits[b, :len(d)], d) for b, d in enumerate(dec)]


_CHUNK = 1024  # positions projected to the vocabulary at a time


def _common_prefix(rows: list[list[int]]) -> list[int]:
    """The longest token prefix all rows share."""
    shortest = min(rows, key=len)
    for i, token in enumerate(shortest):
        if any(row[i] != token for row in rows):
            return shortest[:i]
    return list(shortest)


def _score_hidden(head: Callable[[torch.Tensor], torch.Tensor],
                  items: list[tuple[torch.Tensor, list[int]]]) -> list[LoglikelihoodResult]:
    """_continuation_score for many continuations at once: their hidden states (n_i, D) go
    through the head together, _CHUNK positions at a time, so a batch makes a few large GEMMs
    and one host sync instead of small ones and two syncs per request."""
    if not items:
        return []
    x = torch.cat([h for h, _ in items])
    target = torch.tensor([t for _, cont in items for t in cont], device=x.device)
    logprob = torch.empty(len(target), dtype=torch.float32, device=x.device)
    greedy = torch.empty(len(target), dtype=torch.bool, device=x.device)
    for start in range(0, len(target), _CHUNK):
        logprobs = F.log_softmax(head(x[start:start + _CHUNK]).float(), dim=-1)
        want = target[start:start + _CHUNK]
        logprob[start:start + _CHUNK] = logprobs.gather(1, want[:, None])[:, 0]
        greedy[start:start + _CHUNK] = logprobs.argmax(-1) == want
    lengths = [len(cont) for _, cont in items]
    # float32 sums per continuation, as the one-at-a-time path (and lm-eval's HF backend) add them
    totals = torch.stack([seg.sum() for seg in logprob.split(lengths)]).tolist()
    all_greedy = torch.stack([seg.all() for seg in greedy.split(lengths)]).tolist()
    return [LoglikelihoodResult(t, g, n) for t, g, n in zip(totals, all_greedy, lengths)]


def _continuation_score(head: Callable[[torch.Tensor], torch.Tensor] | None, x: torch.Tensor,
                        cont: list[int]) -> LoglikelihoodResult:
    """Score `cont` (n tokens) from x (n, ...): logits (n, V) when head is None, else hidden
    states (n, D) that head(x) turns into logits, a chunk at a time."""
    target = torch.tensor(cont, device=x.device)
    total, greedy = 0.0, True
    for start in range(0, len(cont), _CHUNK):
        part = x[start:start + _CHUNK]
        logits = head(part) if head is not None else part
        logprobs = F.log_softmax(logits.float(), dim=-1)
        want = target[start:start + _CHUNK]
        total += logprobs.gather(1, want[:, None]).sum().item()
        greedy = greedy and bool((logprobs.argmax(-1) == want).all().item())
    return LoglikelihoodResult(total, greedy, len(cont))


def rolling_windows(tokens: list[int], prefix_token: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """Disjoint (context, continuation) windows covering every token once; the first token is
    predicted from the prefix token, each later window conditions on the tokens before it."""
    windows = []
    for start in range(0, len(tokens), max_len):
        chunk = tokens[start:start + max_len]
        if start == 0:
            windows.append(([prefix_token], chunk))
        else:  # condition on as many earlier tokens as fit: context + chunk = max_len + 1 tokens
            context = tokens[max(0, start + len(chunk) - max_len - 1):start]
            windows.append((context, chunk))
    return windows
