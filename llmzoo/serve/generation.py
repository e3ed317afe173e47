"""/v1/chat/completions and /v1/completions on the engine: requests in, OpenAI responses out.

The engine decodes on its own thread and pushes chunks into each request's queue; reading a chunk
blocks, so it happens on the server's thread pool (`run_in_executor`) and the event loop stays free
for other clients. n > 1 is n engine requests (seeds seed, seed+1, ...: different samples, each
reproducible); they decode in the same running batch.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Executor

from llmzoo.infer.engine_request import Request
from llmzoo.serve.errors import APIError
from llmzoo.serve.metrics import Metrics
from llmzoo.serve.models import ServedModel
from llmzoo.serve.schemas import ChatCompletionRequest, CompletionRequest

_DONE = object()


def refuse_unsupported(body: ChatCompletionRequest | CompletionRequest) -> None:
    """Parameters of the API that the engine does not implement: a clear 400, never silently ignored."""
    def refuse(param: str, why: str) -> None:
        raise APIError(400, f"{param} is not supported by llmzoo serve: {why}", param=param, code="unsupported")

    if body.logit_bias:
        refuse("logit_bias", "leave it out")
    if isinstance(body, ChatCompletionRequest):
        if body.top_logprobs and not body.logprobs:
            raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        if body.response_format and body.response_format.get("type", "text") != "text":
            refuse("response_format", "JSON mode needs constrained decoding, which the engine does not do yet")
        if body.tools or body.tool_choice not in (None, "none"):
            refuse("tools", "function calling is not implemented yet")
    else:
        if body.logprobs is not None and body.echo:
            refuse("logprobs", "log-probabilities of echoed prompt tokens are not computed; drop echo or logprobs")
        if body.suffix:
            refuse("suffix", "insertion (fill in the middle) is not implemented")
        if body.best_of not in (None, 1):
            refuse("best_of", "use n")
    if body.stream_options is not None and not body.stream:
        raise APIError(400, "stream_options is only allowed with stream: true", param="stream_options")


def submit(served: ServedModel, prompt, body, max_tokens: int | None) -> list[Request]:
    """n engine requests for one prompt; if the engine fills up half-way, the ones queued are cancelled."""
    engine = served.engine
    if isinstance(body, ChatCompletionRequest):
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
    else:
        logprobs = body.logprobs
    kwargs = dict(logprobs=logprobs, presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
                  temperature=body.temperature, top_p=body.top_p if body.top_p < 1.0 else None, top_k=body.top_k,
                  repetition_penalty=body.repetition_penalty, stop=body.stop_list())
    requests: list[Request] = []
    try:
        for i in range(body.n):
            seed = None if body.seed is None else body.seed + i
            requests.append(engine.submit(prompt, max_tokens=max_tokens or engine.max_len, seed=seed, **kwargs))
    except BaseException:
        for request in requests:
            request.cancel()
        raise
    return requests


async def next_chunk(request_iter, pool: Executor):
    return await asyncio.get_running_loop().run_in_executor(pool, next, request_iter, _DONE)


async def wait_all(requests: list[Request], pool: Executor) -> None:
    loop = asyncio.get_running_loop()
    try:
        await asyncio.gather(*(loop.run_in_executor(pool, r.result) for r in requests))
    except asyncio.CancelledError:
        for request in requests:
            request.cancel()
        raise


def usage(requests: list[Request]) -> dict:
    prompt = sum(len(r.prompt_ids) for r in requests[:1]) if requests else 0  # one prompt, n samples
    completion = sum(len(r.token_ids) for r in requests)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_logprobs(tokenizer, ids: list[int], entries) -> dict:
    """OpenAI's chat shape: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}."""
    def one(token_id: int, logprob: float) -> dict:
        text = tokenizer.decode([token_id])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {"content": [{**one(t, lp), "top_logprobs": [one(a, alp) for a, alp in top]}
                        for t, (lp, top) in zip(ids, entries)], "refusal": None}


def completion_logprobs(tokenizer, ids: list[int], entries, offset: int = 0) -> dict:
    """The legacy completions shape: parallel lists, top_logprobs as {token: logprob} per position."""
    tokens = [tokenizer.decode([t]) for t in ids]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    tops = []
    for _, top in entries:
        tops.append({})
        for alternative, logprob in top:  # likeliest first: a text two byte pieces share keeps the higher
            tops[-1].setdefault(tokenizer.decode([alternative]), logprob)
    return {"tokens": tokens, "token_logprobs": [lp for lp, _ in entries], "top_logprobs": tops,
            "text_offset": offsets}


def _sse(payload: dict) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class Generation:
    """One chat or completion call: its requests, and the OpenAI response (whole or streamed)."""

    def __init__(self, served: ServedModel, kind: str, groups: list[tuple[str, list[Request]]], body,
                 pool: Executor, metrics: Metrics) -> None:
        self.served, self.kind, self.groups, self.body = served, kind, groups, body
        self.pool, self.metrics = pool, metrics
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.started = time.perf_counter()
        self.requests = [r for _, group in groups for r in group]

    def cancel(self) -> None:
        for request in self.requests:
            request.cancel()

    def _record(self) -> None:
        total = [usage(group) for _, group in self.groups]
        self.metrics.tokens(self.served.name, sum(u["prompt_tokens"] for u in total),
                            sum(u["completion_tokens"] for u in total))

    def _usage(self) -> dict:
        total = [usage(group) for _, group in self.groups]
        return {key: sum(u[key] for u in total) for key in ("prompt_tokens", "completion_tokens", "total_tokens")}

    async def whole(self, is_disconnected=None) -> dict:
        """The whole response; a client that hangs up before it is ready cancels its requests (polled
        every half second through `is_disconnected`, Starlette's Request.is_disconnected)."""
        waiter = asyncio.ensure_future(wait_all(self.requests, self.pool))
        try:
            while not (await asyncio.wait({waiter}, timeout=0.5))[0]:
                if is_disconnected is not None and await is_disconnected():
                    self.cancel()
        finally:
            if not waiter.done():
                self.cancel()
        await waiter  # time to first token is measured on streams only
        self._record()
        choices = []
        for echo, group in self.groups:
            for request in group:
                index = len(choices)
                reason = request.finish_reason or "stop"
                logprobs = self._logprobs(request, request.token_ids, request.token_logprobs)
                if self.kind == "chat":
                    choices.append({"index": index, "message": {"role": "assistant", "content": request.text},
                                    "logprobs": logprobs, "finish_reason": reason})
                else:
                    choices.append({"index": index, "text": echo + request.text, "logprobs": logprobs,
                                    "finish_reason": reason})
        return {"id": self.id, "object": "chat.completion" if self.kind == "chat" else "text_completion",
                "created": self.created, "model": self.served.name, "choices": choices, "usage": self._usage(),
                "system_fingerprint": None}

    def _logprobs(self, request: Request, ids: list[int], entries, offset: int = 0) -> dict | None:
        if request.logprobs is None:
            return None
        if self.kind == "chat":
            return chat_logprobs(self.served.tokenizer, ids, entries)
        return completion_logprobs(self.served.tokenizer, ids, entries, offset)

    def _chunk(self, index: int, *, text: str | None = None, role: bool = False, finish: str | None = None,
               logprobs: dict | None = None) -> dict:
        if self.kind == "chat":
            delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text is not None else {})
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
            obj = "text_completion"
        payload = {"id": self.id, "object": obj, "created": self.created, "model": self.served.name,
                   "choices": [choice], "system_fingerprint": None}
        if self.body.stream_options is not None and self.body.stream_options.include_usage:
            payload["usage"] = None  # OpenAI: null on every chunk but the last
        return payload

    async def stream(self) -> AsyncIterator[bytes]:
        """SSE: `data: {chunk}` per piece of text, a usage chunk if asked, then `data: [DONE]`. The
        choices stream one after another (they decode together; the later ones wait in their queues).
        A client that goes away closes this generator: `finally` cancels its requests, freeing their rows."""
        try:
            index = 0
            first = True
            for echo, group in self.groups:
                for request in group:
                    if self.kind == "chat":
                        yield _sse(self._chunk(index, role=True))
                    elif echo:
                        yield _sse(self._chunk(index, text=echo))
                    chunks, done, offset = iter(request), 0, 0
                    while (chunk := await next_chunk(chunks, self.pool)) is not _DONE:
                        if first and chunk.token_ids:
                            self.metrics.first_token(self.served.name, time.perf_counter() - self.started)
                            first = False
                        # the engine records a token's logprobs before the chunk that carries it
                        count = len(chunk.token_ids)
                        logprobs = self._logprobs(request, chunk.token_ids,
                                                  request.token_logprobs[done:done + count], offset)
                        done, offset = done + count, offset + len(chunk.text)
                        if chunk.text or (logprobs is not None and count):
                            yield _sse(self._chunk(index, text=chunk.text, logprobs=logprobs))
                    yield _sse(self._chunk(index, finish=request.finish_reason or "stop"))
                    index += 1
            self._record()
            if self.body.stream_options is not None and self.body.stream_options.include_usage:
                yield _sse({"id": self.id, "object": "chat.completion.chunk" if self.kind == "chat"
                            else "text_completion", "created": self.created, "model": self.served.name,
                            "choices": [], "usage": self._usage(), "system_fingerprint": None})
            yield b"data: [DONE]\n\n"
        finally:
            self.cancel()
