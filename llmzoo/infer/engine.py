"""Continuous batching: requests join and leave the running batch at every step (Yu et al. 2022, Orca).

The engine owns one StaticCache of `max_batch` rows, each row a slot for one request at its own
length (the cache's per-row write positions and key mask). A background thread loops:
1. free the rows of finished or cancelled requests;
2. admit waiting requests into free rows and prefill their prompts, `prefill_chunk` tokens per step,
   so a long prompt does not stall the others' decoding (chunked prefill, Agrawal et al. 2023);
3. one batched decode step for every row that is decoding (compiled where the model allows it,
   llmzoo.infer.compiled), then each request samples with its own settings and seed.
Each request therefore decodes exactly as it would alone: its row attends only to its own slots.

    engine = llmzoo.Engine(model, tokenizer, max_batch=8)
    for chunk in engine.submit("Once upon a time", max_tokens=32):
        print(chunk.text, end="", flush=True)
"""

from __future__ import annotations

import collections
import os
import threading

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import StaticCache
from llmzoo.infer.compiled import bucket_batch, bucket_cache_len, can_compile, decode_step_for
from llmzoo.infer.engine_request import Completion, Request
from llmzoo.infer.sampling import check_generation_args, next_tokens


DEFAULT_MAX_LEN = 2048
SLOT_BUCKET = 128  # eager steps attend over the filled cache slots, rounded up to a power of two >= this


class EngineFullError(LlmzooError):
    """The engine's queue is at its bound: the caller should retry later (a server answers 429)."""


class EngineStoppedError(LlmzooError):
    """The engine thread died on an internal error: nothing more can run on it (a server answers 503)."""


class Engine:
    supports_constraints = True  # submit(constraint=...) masks logits (llmzoo.infer.constrained)

    def __init__(self, model: nn.Module, tokenizer, *, max_batch: int = 8, max_len: int | None = None,
                 max_queue: int = 64, prefill_chunk: int = 256, compile: bool | None = None) -> None:
        if model.config.arch != "decoder" or getattr(model, "lm_head", None) is None:
            raise LlmzooError(f"the engine serves decoder language models; {model.config.name} is not one")
        if not StaticCache.supports(model.config):
            raise LlmzooError(f"{model.config.name}'s positions ({model.config.position}) need a growing cache; "
                              f"use llmzoo.generate for it")
        if max_batch < 1 or max_queue < 0 or prefill_chunk < 1:
            raise LlmzooError("max_batch and prefill_chunk must be >= 1 and max_queue >= 0")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_batch, self.max_queue, self.prefill_chunk = max_batch, max_queue, prefill_chunk
        # Default context: the model's, at most DEFAULT_MAX_LEN (every row preallocates all of it).
        self.max_len = max_len or min(model.config.max_seq_len, DEFAULT_MAX_LEN)
        # The cache length is rounded up as generate_ids rounds it, so engines of nearby lengths share
        # compiled graphs instead of compiling their own (~100 s each on a 2-core CPU).
        self.cache = StaticCache.for_model(model, max_batch, bucket_cache_len(self.max_len))
        self._views: dict = {}  # (first n rows[, first L slots]) views, for decode steps over fewer rows
        if compile is None:  # a serving engine runs long enough to repay compiling; LLMZOO_COMPILE=0 opts out
            compile = os.environ.get("LLMZOO_COMPILE", "1") != "0"
        self.step_fn = decode_step_for(model) if compile and can_compile(model) else None
        self.rows: list[Request | None] = [None] * max_batch
        self.pending: dict[int, list[int]] = {}  # row -> prompt tokens not yet prefilled
        self.next_input = torch.zeros(max_batch, dtype=torch.long)  # each decoding row's newest token
        self.waiting: collections.deque[Request] = collections.deque()
        self._wake = threading.Condition()
        self._closed = False
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        eos = set(getattr(tokenizer, "stop_token_ids", None) or ())
        self.eos = eos | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())

    # --- the caller's side ----------------------------------------------------------------------

    def submit(self, prompt: str | list[dict] | list[int], *, max_tokens: int = 128, temperature: float = 0.0,
               top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
               stop: list[str] | None = None, seed: int | None = None, logprobs: int | None = None,
               presence_penalty: float = 0.0, frequency_penalty: float = 0.0, constraint=None,
               logit_bias: dict[int, float] | None = None, prompt_logprobs: int | None = None) -> Request:
        """Queue a request: a text, chat messages (rendered with the model's chat template) or token
        ids. Returns its handle at once; iterate it for the text as it is produced.
        logprobs=k records each new token's log-probability and the k most likely alternatives in
        `request.token_logprobs` (the model's log-softmax, before temperature, top-k/p and penalties).
        presence_penalty / frequency_penalty: OpenAI's additive penalties, logit[j] -= frequency_penalty *
        count[j] + presence_penalty * (count[j] > 0), counting the tokens generated so far.
        constraint: a llmzoo.infer.constrained.TokenConstraint (e.g. JSON), one object per request: its
        allowed tokens are the only ones sampled, EOS only once it is complete.
        logit_bias: {token id: bias in [-100, 100]} added to those logits before sampling (OpenAI's
        parameter: -100 bans a token, +100 all but forces it); log-probabilities stay the model's.
        prompt_logprobs=k scores the prompt too: `request.prompt_token_logprobs` gets an entry per prompt
        token (None for the first, which nothing predicts), from the prefill's logits at no extra
        forward. With it, max_tokens=0 scores the prompt and generates nothing (OpenAI's echo)."""
        for name, value in (("presence_penalty", presence_penalty), ("frequency_penalty", frequency_penalty)):
            if not isinstance(value, (int, float)) or not -2.0 <= value <= 2.0:
                raise LlmzooError(f"{name} must be a number in [-2, 2], got {value!r}")
        for name, value in (("logprobs", logprobs), ("prompt_logprobs", prompt_logprobs)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise LlmzooError(f"{name} must be a whole number >= 0 (alternatives per token), got {value!r}")
        scores_only = max_tokens == 0 and prompt_logprobs is not None and not isinstance(max_tokens, bool)
        sampling = check_generation_args(1 if scores_only else max_tokens, temperature, top_k, top_p,
                                         repetition_penalty)
        bias = self._logit_bias(logit_bias)
        ids = self._prompt_ids(prompt)
        if len(ids) >= self.max_len:
            raise LlmzooError(f"prompt of {len(ids)} tokens does not fit the engine's context of {self.max_len} "
                              f"tokens; shorten it")
        request = Request(ids, sampling, min(max_tokens, self.max_len - len(ids)), [s for s in stop or [] if s], seed,
                          decoder=self.tokenizer.stream_decoder(skip_special_tokens=True))
        request.logprobs = logprobs
        request.presence_penalty, request.frequency_penalty = float(presence_penalty), float(frequency_penalty)
        request.constraint = constraint
        request.logit_bias, request.prompt_logprobs = bias, prompt_logprobs
        if seed is not None:
            request.generator = torch.Generator().manual_seed(seed)
        with self._wake:
            if self._failed is not None:
                raise EngineStoppedError(f"the engine stopped after an internal error ({self._failed}); start a new one")
            if self._closed:
                raise LlmzooError("the engine is closed")
            if len(self.waiting) >= self.max_queue + self.rows.count(None):  # rows not yet admitted count too
                raise EngineFullError(f"the engine is full: {self.max_batch} running and {len(self.waiting)} "
                                      f"queued (max_queue={self.max_queue}); retry later")
            self.waiting.append(request)
            self._start()
            self._wake.notify()
        return request

    def _logit_bias(self, logit_bias: dict[int, float] | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """OpenAI's logit_bias as (token ids, biases), after checking every entry."""
        if not logit_bias:
            return None
        vocab = self.model.config.vocab_size
        for token, bias in logit_bias.items():
            if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab:
                raise LlmzooError(f"logit_bias keys are token ids below the vocabulary size {vocab}, got {token!r}")
            if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
                raise LlmzooError(f"logit_bias values are numbers in [-100, 100], got {bias!r} for token {token}")
        return torch.tensor(list(logit_bias)), torch.tensor([float(b) for b in logit_bias.values()])

    @property
    def failed(self) -> bool:
        """True once the engine thread stopped on an internal error (set before it fails what it held,
        so a caller that saw its request fail never sees the engine as healthy)."""
        return self._failed is not None

    def generate(self, prompt: str | list[dict] | list[int], **kwargs) -> Completion:
        return self.submit(prompt, **kwargs).result()

    def close(self) -> None:
        """Cancel what is queued or running and stop the engine thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
        for request in list(self.waiting) + [r for r in self.rows if r is not None]:
            request.finish("cancelled")

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _prompt_ids(self, prompt) -> list[int]:
        if isinstance(prompt, str):
            ids = self.tokenizer.encode(prompt)
        elif prompt and all(isinstance(m, dict) for m in prompt):
            ids = self.tokenizer.encode(self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True),
                                        add_special_tokens=False)
        elif all(isinstance(t, int) and 0 <= t < self.model.config.vocab_size for t in prompt):
            ids = list(prompt)
        else:
            raise LlmzooError("a prompt is a string, a list of chat messages ({'role', 'content'}) or a list of "
                              f"token ids below the vocabulary size {self.model.config.vocab_size}")
        if not ids:
            raise LlmzooError("prompt is empty: give at least one token of text")
        return ids

    # --- the engine thread ----------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="llmzoo-engine", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                while True:
                    with self._wake:
                        while not self._closed and not self.waiting and all(r is None for r in self.rows):
                            self._wake.wait()
                        if self._closed:
                            return
                    self.step()
        except BaseException as error:  # never leave a caller waiting on a dead engine
            with self._wake:
                self._failed = error
                stranded = list(self.waiting) + [r for r in self.rows if r is not None]
            for request in stranded:
                request.finish("cancelled", error)
            raise

    def step(self) -> None:
        """One scheduling step: free, admit and prefill, then decode every decoding row once."""
        for row, request in enumerate(self.rows):
            if request is not None and (request.cancelled or request.finish_reason is not None):
                request.finish("cancelled")
                self.rows[row] = None
                self.pending.pop(row, None)
                self.cache.reset_row(row)  # an idle row's old length no longer widens the others' window
        with self._wake:
            while self.waiting and None in self.rows:
                row = self.rows.index(None)
                self.rows[row] = request = self.waiting.popleft()
                self.cache.reset_row(row)
                self.pending[row] = list(request.prompt_ids)
        for row in list(self.pending):
            self._prefill_chunk(row)
        decoding = [row for row, r in enumerate(self.rows) if r is not None and row not in self.pending
                    and r.finish_reason is None]
        if decoding:
            self._decode(decoding)

    def _prefill_chunk(self, row: int) -> None:
        request, rest = self.rows[row], self.pending[row]
        start = len(request.prompt_ids) - len(rest)
        chunk, self.pending[row] = rest[:self.prefill_chunk], rest[self.prefill_chunk:]
        view = self.cache.rows(row, row + 1, self._slots(start + len(chunk)))
        scoring = request.prompt_logprobs is not None
        logits = self.model(torch.tensor([chunk]), cache=view, logits_to_keep=0 if scoring else 1).logits[0]
        view.advance(len(chunk))
        if scoring:
            self._score_prompt(request, start, logits)
        if not self.pending[row]:
            del self.pending[row]
            request.prompt_scored.set()
            if request.max_tokens == 0:  # only the prompt's scores were asked for
                request.finish("length")
            else:
                self._sample_or_fail(row, logits[-1])

    @staticmethod
    def _score_prompt(request: Request, start: int, logits: torch.Tensor) -> None:
        """Log-probabilities of the prompt tokens that positions start.. of this chunk predict."""
        if start == 0:
            request.prompt_token_logprobs.append(None)  # the first token has no prediction
        targets = request.prompt_ids[start + 1:start + 1 + len(logits)]
        logp = logits[:len(targets)].float().log_softmax(-1)
        picked = logp.gather(-1, torch.tensor(targets)[:, None])[:, 0].tolist()
        k = min(request.prompt_logprobs, logp.shape[-1])
        top = logp.topk(k) if k else None
        for i, value in enumerate(picked):
            request.prompt_token_logprobs.append((value, [] if top is None else
                                                  list(zip(top.indices[i].tolist(), top.values[i].tolist()))))

    def _decode(self, rows: list[int]) -> None:
        # Requests take the lowest free rows, so the live ones sit at the front: decode only the first
        # n rows (n a power of two, the compiled step's buckets), not all max_batch every step.
        n = min(bucket_batch(max(rows) + 1), self.max_batch)
        # eager: attend over the filled slots only (a compiled step keeps its shapes)
        slots = self._slots(int(self.cache.write_start[:n].max()) + 1) if self.step_fn is None else None
        cache = self.cache if (n, slots) == (self.max_batch, None) else self._view(n, slots)
        active = torch.zeros(n, dtype=torch.bool)
        active[rows] = True
        tokens = self.next_input[:n].masked_fill(~active, 0)[:, None]
        if self.step_fn is not None:
            logits = self.step_fn(tokens, cache)
        else:
            logits = self.model(tokens, attention_mask=active[:, None], cache=cache, logits_to_keep=1).logits[:, -1]
        cache.advance_rows(active)
        for row in rows:
            self._sample_or_fail(row, logits[row])

    def _view(self, n: int, slots: int | None) -> StaticCache:
        """The first n rows (and first `slots` slots), made once per shape: not rebuilt every step."""
        view = self._views.get((n, slots))
        if view is None:
            view = self._views[(n, slots)] = self.cache.rows(0, n, slots)
        return view

    def _slots(self, needed: int) -> int | None:
        """The cache slots an eager forward attends over: `needed` rounded up to a power of two (at
        least SLOT_BUCKET), so a short request in a long engine (max_len 4096) reads its few hundred
        filled slots, not all of them: decode time no longer grows with max_len. None: all of them."""
        size = max(SLOT_BUCKET, 1 << (needed - 1).bit_length())
        return None if size >= self.cache.max_len else size

    def _sample_or_fail(self, row: int, logits: torch.Tensor) -> None:
        """Sample for one request; its own bad settings (e.g. a temperature so small the probabilities
        overflow) end that request with the error, not the engine and everyone else's requests."""
        try:
            self._sample(row, logits)
        except Exception as error:
            self.rows[row].finish("cancelled", LlmzooError(f"sampling failed for this request ({error}); "
                                                           f"check its temperature and penalties"))

    def _sample(self, row: int, logits: torch.Tensor) -> None:
        request = self.rows[row]
        if request.sampling.repetition_penalty != 1.0 and request.seen is None:
            request.seen = torch.zeros(1, self.model.config.vocab_size, dtype=torch.bool)
            request.seen[0, request.prompt_ids] = True
        scores = logits
        if request.logit_bias is not None:
            ids, biases = request.logit_bias
            scores = logits.float().index_add(0, ids, biases)
        if request.presence_penalty or request.frequency_penalty:
            if request.counts is None:
                request.counts = torch.zeros(logits.shape[-1])
            scores = (scores.float() - request.frequency_penalty * request.counts
                      - request.presence_penalty * (request.counts > 0).float())
        if request.constraint is not None:
            scores = self._constrain(request, scores)
            if scores is None:
                return
        token = int(next_tokens(scores[None].float(), request.sampling, request.seen, request.generator)[0])
        if request.seen is not None:
            request.seen[0, token] = True
        if request.counts is not None:
            request.counts[token] += 1
        if token in self.eos:
            request.finish("eos")
            return
        if request.logprobs is not None:  # before accept(): a chunk's tokens have their entries when it is read
            logp = logits.float().log_softmax(-1)
            top = logp.topk(min(request.logprobs, logp.numel())) if request.logprobs else None
            request.token_logprobs.append((float(logp[token]), [] if top is None else
                                           list(zip(top.indices.tolist(), top.values.tolist()))))
        if request.constraint is not None:
            request.constraint.advance(token)  # before accept(), which ends a request its constraint finished
        if not request.accept(token):
            self.next_input[row] = token

    def _constrain(self, request: Request, scores: torch.Tensor) -> torch.Tensor | None:
        """Scores with the tokens the request's constraint forbids at -inf; None when none is allowed
        (the request is ended: complete, or its grammar cannot go on in the tokens left)."""
        constraint = request.constraint
        allowed = constraint.allowed(request.max_tokens - len(request.token_ids), scores.shape[-1])
        if constraint.complete:
            allowed[[t for t in self.eos if t < allowed.numel()]] = True
        if not allowed.any():
            request.finish("eos" if constraint.complete else "length")
            return None
        return scores.float().masked_fill(~allowed, float("-inf"))
