"""The FastAPI app: routes, API-key check, error handlers, metrics, and the models' lifetime.

    app = create_app({"smollm2": load_served("smollm2-135m-instruct")}, api_key="secret")
    uvicorn.run(app, port=8000)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from concurrent.futures import ThreadPoolExecutor

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmzoo.errors import LlmzooError
from llmzoo.infer.constrained import TokenTable
from llmzoo.infer.constrained_json import JsonConstraint
from llmzoo.serve import embeddings, errors
from llmzoo.serve.errors import APIError
from llmzoo.serve.generation import Generation, refuse_unsupported, submit
from llmzoo.serve.metrics import Metrics
from llmzoo.serve.models import ServedModel
from llmzoo.rag.index import RagIndex
from llmzoo.serve.rag import retrieve
from llmzoo.serve.response_format import response_format_node
from llmzoo.serve.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from llmzoo.serve.streaming import IdleTimeoutStreamingResponse
from llmzoo.serve.tool_calls import plan_tools, render


def chat_prompt(tokenizer, messages: list[dict], plan) -> list[dict] | list[int]:
    """Plain conversations go to the engine as messages (it applies the template); with tools, or
    tool calls and results in the history, the prompt is rendered here (tool_calls.render)."""
    if plan is None and not any(m.get("tool_calls") or m["role"] == "tool" for m in messages):
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    if not getattr(tokenizer, "chat_template", None):
        raise APIError(400, "this model has no chat template, so it cannot be given tools", param="tools")
    return tokenizer.encode(render(tokenizer, messages, plan), add_special_tokens=False)


def create_app(served: dict[str, ServedModel], *, api_key: str | None = None, close_on_shutdown: bool = True,
               request_timeout: float | None = None, idle_timeout: float | None = None,
               rag_indexes: dict[str, RagIndex] | None = None) -> FastAPI:
    """An app serving `served` (name -> model). With api_key, /v1/* needs `Authorization: Bearer <key>`.
    On shutdown the engines are closed: what is still queued or running is cancelled.
    request_timeout: seconds a chat or completion may run before it is cancelled (504, or an error
    event in a stream); idle_timeout: seconds a streaming client may leave a chunk unread before it
    is dropped; rag_indexes: name -> index, for chat's `rag` extension (llmzoo.serve.rag)."""
    rag_indexes = rag_indexes or {}
    metrics = Metrics()
    # One thread per engine request a client waits on; the engines' bounds (rows + queue) bound them.
    workers = 8 + sum(s.engine.max_batch + s.engine.max_queue for s in served.values() if s.engine is not None)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmzoo-serve")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if close_on_shutdown:
            for model in served.values():
                model.close()
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="llmzoo", description="OpenAI-compatible API over llmzoo models", lifespan=lifespan)
    app.state.served, app.state.metrics = served, metrics
    app.add_exception_handler(APIError, errors.api_error_handler)
    app.add_exception_handler(LlmzooError, errors.llmzoo_error_handler)
    app.add_exception_handler(RequestValidationError, errors.validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, errors.http_error_handler)
    app.add_exception_handler(Exception, errors.unexpected_error_handler)

    app.add_middleware(CountRequests, metrics=metrics)

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise APIError(401, "missing API key: send the header 'Authorization: Bearer <key>' (the key given to "
                                "llmzoo serve --api-key)", code="invalid_api_key")
        if not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise APIError(401, "incorrect API key provided", code="invalid_api_key")

    def model_for(name: str, kind: str) -> ServedModel:
        if name not in served:
            raise APIError(404, f"the model {name!r} does not exist; this server serves: {', '.join(sorted(served))}",
                           param="model", code="model_not_found")
        model = served[name]
        if not model.alive:
            raise APIError(503, f"{name}'s engine stopped on an internal error (see the server log); restart the "
                                f"server", code="engine_stopped")
        if model.kind != kind:
            what = "chat and completions need a decoder" if kind == "decoder" else "embeddings need an encoder"
            raise APIError(400, f"{name} is an {model.kind} model; {what}", param="model", code="wrong_model_kind")
        return model

    @app.get("/health")
    async def health():
        dead = sorted(name for name, model in served.items() if not model.alive)
        if dead:
            return JSONResponse({"status": "error", "models": sorted(served), "stopped": dead}, status_code=503)
        return {"status": "ok", "models": sorted(served)}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> str:
        return metrics.render(served)

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    async def list_models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "llmzoo"}
                                           for name in sorted(served)]}

    @app.get("/v1/models/{name}", dependencies=[Depends(check_key)])
    async def get_model(name: str) -> dict:
        if name not in served:
            raise APIError(404, f"the model {name!r} does not exist", param="model", code="model_not_found")
        return {"id": name, "object": "model", "created": 0, "owned_by": "llmzoo"}

    async def respond(generation: Generation, stream: bool, request: Request):
        if stream:
            return IdleTimeoutStreamingResponse(generation.stream(), media_type="text/event-stream",
                                                headers={"Cache-Control": "no-cache"}, idle_timeout=idle_timeout,
                                                on_idle=generation.cancel)
        return JSONResponse(await generation.whole(request.is_disconnected))

    async def constraint_for(model: ServedModel, node):
        """A maker of per-request JSON constraints for `node` (None: unconstrained). The token table
        is built once per tokenizer (~1 s at 49k tokens), on the pool so the event loop stays free."""
        if node is None:
            return None
        if not getattr(model.engine, "supports_constraints", False):
            raise APIError(400, "response_format needs constrained decoding, which this engine does not do",
                           param="response_format", code="unsupported")
        table = await asyncio.get_running_loop().run_in_executor(pool, TokenTable.for_tokenizer, model.tokenizer)
        return lambda: JsonConstraint(node, table)

    @app.post("/v1/chat/completions", dependencies=[Depends(check_key)])
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        model = model_for(body.model, "decoder")
        refuse_unsupported(body)
        plan = plan_tools(body.tools, body.tool_choice)
        node = response_format_node(body.response_format, [m.text() for m in body.messages], "messages")
        if plan is not None and plan.grammar is not None:
            if getattr(model.engine, "supports_constraints", False):
                node = plan.grammar  # a forced call: the call's own JSON, whatever response_format says
            else:  # e.g. a scripted test engine: prefix forcing and retries (tool_calls.py)
                plan.grammar = None
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text(),
                     "tool_calls": m.tool_calls, "tool_call_id": m.tool_call_id, "name": m.name}
                    for m in body.messages]
        extra = {}
        if body.rag is not None:
            messages, extra["sources"] = await retrieve(rag_indexes, body.rag, messages, pool)
        max_tokens = body.max_completion_tokens or body.max_tokens
        prompt = chat_prompt(model.tokenizer, messages, plan)
        constraint = await constraint_for(model, node)
        requests = submit(model, prompt, body, max_tokens, constraint)

        def resubmit(attempt: int):  # a forced tool call sampled again (tool_calls.RETRIES)
            retry = body.model_copy(update={"n": 1, "temperature": 0.7, "seed": (body.seed or 0) + 1000 * attempt})
            return submit(model, prompt, retry, max_tokens, constraint)[0]

        generation = Generation(model, "chat", [("", requests)], body, pool, metrics, timeout=request_timeout,
                                extra=extra, tools=plan, resubmit=resubmit)
        return await respond(generation, body.stream, request)

    @app.post("/v1/completions", dependencies=[Depends(check_key)])
    async def completions(body: CompletionRequest, request: Request):
        model = model_for(body.model, "decoder")
        refuse_unsupported(body)
        prompts = body.prompt
        if isinstance(prompts, str) or (prompts and all(isinstance(t, int) for t in prompts)):
            prompts = [prompts]
        if not prompts:
            raise APIError(400, "prompt is empty: give a string, a list of strings or token ids", param="prompt")
        texts = [p if isinstance(p, str) else model.tokenizer.decode([t for t in p if isinstance(t, int)])
                 for p in prompts] if body.response_format else []
        constraint = await constraint_for(model, response_format_node(body.response_format, texts, "prompt"))
        groups = []
        try:
            for prompt in prompts:
                echo = "" if not body.echo else prompt if isinstance(prompt, str) else model.tokenizer.decode(prompt)
                groups.append((echo, submit(model, prompt, body, body.max_tokens, constraint)))
        except BaseException:
            for _, group in groups:
                for request in group:
                    request.cancel()
            raise
        generation = Generation(model, "completion", groups, body, pool, metrics, timeout=request_timeout)
        return await respond(generation, body.stream, request)

    @app.post("/v1/embeddings", dependencies=[Depends(check_key)])
    async def create_embeddings(body: EmbeddingRequest):
        model = model_for(body.model, "encoder")
        if body.dimensions is not None:
            raise APIError(400, "dimensions is not supported: the encoder's vectors have a fixed size",
                           param="dimensions", code="unsupported")
        ids = embeddings.input_ids(model, body)
        vectors = await asyncio.get_running_loop().run_in_executor(pool, embeddings.embed_all, model, ids)
        metrics.tokens(model.name, sum(len(s) for s in ids), 0)
        return embeddings.response(model, body, ids, vectors)

    return app


class CountRequests:
    """Counts responses by route and status. Plain ASGI rather than @app.middleware("http"): that
    wrapper re-plumbs `receive`, and routes would no longer see the client's http.disconnect."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def send_counted(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            self.metrics.request(getattr(scope.get("route"), "path", "other"), status)
