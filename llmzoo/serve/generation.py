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
from llmzoo.serve.errors import APIError, error_body
from llmzoo.serve.metrics import Metrics
from llmzoo.serve.models import ServedModel
from llmzoo.serve.schemas import ChatCompletionRequest, CompletionRequest
from llmzoo.serve.tool_calls import RETRIES, ToolPlan

_DONE = object()


def refuse_unsupported(body: ChatCompletionRequest | CompletionRequest) -> None:
    """Parameters of the API that the engine does not implement: a clear 400, never silently ignored."""
    def refuse(param: str, why: str) -> None:
        raise APIError(400, f"{param} is not supported by llmzoo serve: {why}", param=param, code="unsupported")

    if isinstance(body, ChatCompletionRequest):
        if body.top_logprobs and not body.logprobs:
            raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    else:
        if body.max_tokens == 0 and not body.echo:
            raise APIError(400, "max_tokens 0 generates nothing: ask for at least 1 token, or pass echo (with "
                                "logprobs) to score the prompt", param="max_tokens")
        if body.suffix:
            refuse("suffix", "insertion (fill in the middle) is not implemented")
        if body.best_of not in (None, 1):
            refuse("best_of", "use n")
    if body.stream_options is not None and not body.stream:
        raise APIError(400, "stream_options is only allowed with stream: true", param="stream_options")


def logit_bias(body: ChatCompletionRequest | CompletionRequest, served: ServedModel) -> dict[int, float] | None:
    """OpenAI's logit_bias ({"token id": bias}, JSON keys are strings) as the engine's {int: float}."""
    if not body.logit_bias:
        return None
    vocab_size = served.model.config.vocab_size
    out = {}
    for key, bias in body.logit_bias.items():
        token = int(key) if key.strip().isdigit() else -1
        if not 0 <= token < vocab_size:
            raise APIError(400, f"logit_bias keys are token ids below the vocabulary size {vocab_size}, got {key!r}",
                           param="logit_bias")
        out[token] = bias
    return out


def submit(served: ServedModel, prompt, body, max_tokens: int | None, constraint=None) -> list[Request]:
    """n engine requests for one prompt; if the engine fills up half-way, the ones queued are cancelled.
    constraint: None, or a function making each request's own TokenConstraint (response_format, tools)."""
    engine = served.engine
    prompt_logprobs = None
    if isinstance(body, ChatCompletionRequest):
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
    else:
        logprobs = body.logprobs
        if body.echo and (logprobs is not None or max_tokens == 0):  # echo scores the prompt's tokens too
            prompt_logprobs = logprobs or 0
    kwargs = dict(logprobs=logprobs, prompt_logprobs=prompt_logprobs,
                  logit_bias=logit_bias(body, served), presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
                  temperature=body.temperature, top_p=body.top_p if body.top_p < 1.0 else None, top_k=body.top_k,
                  repetition_penalty=body.repetition_penalty, stop=body.stop_list())
    requests: list[Request] = []
    try:
        for i in range(body.n):
            seed = None if body.seed is None else body.seed + i
            if constraint is not None:
                kwargs["constraint"] = constraint()
            requests.append(engine.submit(prompt, max_tokens=engine.max_len if max_tokens is None else max_tokens,
                                          seed=seed, **kwargs))
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
    for entry in entries:
        if entry is None:  # an echoed prompt's first token: nothing predicts it (OpenAI sends null)
            tops.append(None)
            continue
        tops.append({})
        for alternative, logprob in entry[1]:  # likeliest first: a text two byte pieces share keeps the higher
            tops[-1].setdefault(tokenizer.decode([alternative]), logprob)
    return {"tokens": tokens, "token_logprobs": [None if e is None else e[0] for e in entries], "top_logprobs": tops,
            "text_offset": offsets}


def _sse(payload: dict) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class Generation:
    """One chat or completion call: its requests, and the OpenAI response (whole or streamed)."""

    def __init__(self, served: ServedModel, kind: str, groups: list[tuple[str, list[Request]]], body,
                 pool: Executor, metrics: Metrics, *, timeout: float | None = None, extra: dict | None = None,
                 tools: ToolPlan | None = None, resubmit=None) -> None:
        """timeout: seconds before the call is cancelled (--request-timeout); extra: extension fields
        of the response (RAG's sources); tools: the call's tool plan, with resubmit(attempt) -> Request
        sampling a forced tool call again (tool_calls.RETRIES)."""
        self.served, self.kind, self.groups, self.body = served, kind, groups, body
        self.pool, self.metrics = pool, metrics
        self.timeout, self.extra, self.tools, self.resubmit = timeout, extra or {}, tools, resubmit
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
        await self._wait(self.requests, is_disconnected)  # time to first token is measured on streams only
        calls = await self._tool_calls(is_disconnected) if self.tools is not None else {}
        self._record()
        choices = []
        for echo, group in self.groups:
            for request in group:
                index = len(choices)
                reason = request.finish_reason or "stop"
                if echo and request.prompt_logprobs is not None and request.logprobs is not None:
                    # the echoed prompt's tokens first; the completion's offsets count from the echo's end
                    # (a token's own text need not add up to the prompt's, e.g. byte pieces)
                    head = self._logprobs(request, request.prompt_ids, request.prompt_token_logprobs)
                    tail = self._logprobs(request, request.token_ids, request.token_logprobs, len(echo))
                    logprobs = {key: head[key] + tail[key] for key in head}
                else:
                    logprobs = self._logprobs(request, request.token_ids, request.token_logprobs)
                if self.kind == "chat" and index in calls:
                    content, tool_calls, error = calls[index]
                    message = {"role": "assistant", "content": content}
                    if tool_calls:
                        message["tool_calls"] = [c.openai() for c in tool_calls]
                        reason = "tool_calls"
                    choice = {"index": index, "message": message, "logprobs": logprobs, "finish_reason": reason}
                    if error:
                        choice["tool_call_error"] = error  # an extension: why the reply is not a call
                    choices.append(choice)
                elif self.kind == "chat":
                    choices.append({"index": index, "message": {"role": "assistant", "content": request.text},
                                    "logprobs": logprobs, "finish_reason": reason})
                else:
                    choices.append({"index": index, "text": echo + request.text, "logprobs": logprobs,
                                    "finish_reason": reason})
        return {"id": self.id, "object": "chat.completion" if self.kind == "chat" else "text_completion",
                "created": self.created, "model": self.served.name, "choices": choices, "usage": self._usage(),
                "system_fingerprint": None, **self.extra}

    def _timed_out(self) -> APIError:
        return APIError(504, f"the request ran past the server's request timeout of {self.timeout:g} s and was "
                             f"cancelled; ask for fewer tokens or start the server with a larger --request-timeout",
                        code="request_timeout")

    async def _wait(self, requests: list[Request], is_disconnected=None) -> None:
        """Wait for requests; a client that hangs up (polled through `is_disconnected`, Starlette's
        Request.is_disconnected) or the request timeout cancels them, which frees their rows."""
        waiter = asyncio.ensure_future(wait_all(requests, self.pool))
        try:
            while not (await asyncio.wait({waiter}, timeout=self._poll()))[0]:
                if self._expired():
                    self.cancel()
                    await waiter
                    raise self._timed_out()
                if is_disconnected is not None and await is_disconnected():
                    self.cancel()
        finally:
            if not waiter.done():
                self.cancel()
        await waiter

    def _expired(self) -> bool:
        return self.timeout is not None and time.perf_counter() - self.started >= self.timeout

    def _poll(self) -> float:
        if self.timeout is None:
            return 0.5
        return max(0.0, min(0.5, self.timeout - (time.perf_counter() - self.started)))

    async def _tool_calls(self, is_disconnected) -> dict[int, tuple]:
        """choice index -> (content, tool calls, error). A forced call that does not parse or match its
        schema (one not constrained, see tool_calls.py) is sampled again, up to RETRIES times."""
        out = {}
        index = 0
        for _, group in self.groups:
            for i, request in enumerate(group):
                content, calls, error = self.tools.parse(request.text)
                attempt = 0
                while self.tools.forced and not calls and attempt < RETRIES and self.resubmit is not None:
                    attempt += 1
                    retry = self.resubmit(attempt)
                    self.requests.append(retry)
                    await self._wait([retry], is_disconnected)
                    group[i] = request = retry
                    content, calls, error = self.tools.parse(request.text)
                out[index] = (content, calls, error)
                index += 1
        return out

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
            if self.extra:
                yield _sse({**self._chunk(0), **self.extra})  # sources before the text
            if self.tools is not None:  # a tool call is known only once parsed: stream the finished reply
                async for piece in self._stream_whole():
                    yield piece
                return
            index = 0
            first = True
            for echo, group in self.groups:
                for request in group:
                    offset = 0
                    if self.kind == "chat":
                        yield _sse(self._chunk(index, role=True))
                    elif echo:
                        yield _sse(self._chunk(index, text=echo, logprobs=await self._prompt_logprobs(request)))
                        offset = len(echo)
                    chunks, done = iter(request), 0
                    while (chunk := await self._next_or_timeout(chunks)) is not _DONE:
                        if first and chunk.token_ids:
                            self.metrics.first_token(self.served.name, time.perf_counter() - self.started)
                            first = False
                        # the engine records a token's logprobs before the chunk that carries it
                        count = len(chunk.token_ids)
                        logprobs = self._logprobs(request, chunk.token_ids,
                                                  request.token_logprobs[done:done + count], offset)
                        done += count
                        if logprobs is not None and self.kind != "chat":  # offsets count tokens' texts, as whole()
                            offset += sum(map(len, logprobs["tokens"]))
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
        except APIError as error:  # the status line went out already: an error event, as OpenAI sends
            yield _sse(error_body(error.status, error.message, error.param, error.code))
        finally:
            self.cancel()

    async def _prompt_logprobs(self, request: Request) -> dict | None:
        """An echoed prompt's logprobs, once the engine has prefilled (scored) it; None if not asked."""
        if request.prompt_logprobs is None or request.logprobs is None:
            return None
        await asyncio.get_running_loop().run_in_executor(self.pool, request.prompt_scored.wait)
        return self._logprobs(request, request.prompt_ids, request.prompt_token_logprobs)

    async def _next_or_timeout(self, chunks):
        if self.timeout is None:
            return await next_chunk(chunks, self.pool)
        reading = asyncio.ensure_future(next_chunk(chunks, self.pool))
        done, _ = await asyncio.wait({reading}, timeout=max(0.0, self.timeout - (time.perf_counter() - self.started)))
        if not done:
            self.cancel()  # the engine frees the rows and ends the stream, which unblocks the reader
            await reading
            raise self._timed_out()
        return reading.result()

    async def _stream_whole(self) -> AsyncIterator[bytes]:
        reply = await self.whole()
        for choice in reply["choices"]:
            message = choice["message"]
            yield _sse(self._chunk(choice["index"], role=True))
            if message.get("content"):
                yield _sse(self._chunk(choice["index"], text=message["content"]))
            if message.get("tool_calls"):
                payload = self._chunk(choice["index"])
                payload["choices"][0]["delta"] = {"tool_calls": [{"index": i, **call} for i, call in
                                                                 enumerate(message["tool_calls"])]}
                yield _sse(payload)
            yield _sse(self._chunk(choice["index"], finish=choice["finish_reason"]))
        if self.body.stream_options is not None and self.body.stream_options.include_usage:
            yield _sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.served.name, "choices": [], "usage": reply["usage"], "system_fingerprint": None})
        yield b"data: [DONE]\n\n"
