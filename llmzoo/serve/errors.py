"""Errors in the OpenAI API's JSON shape: `{"error": {"message", "type", "param", "code"}}`.

Clients (the `openai` package among them) read `error.message` and map the HTTP status to an
exception class (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 429
RateLimitError), so each client mistake gets its own status and never a 500.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from llmzoo.errors import LlmzooError
from llmzoo.infer.engine import EngineFullError, EngineStoppedError

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
         429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}


class APIError(LlmzooError):
    """A request the server refuses, with its HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status)


async def api_error_handler(request: Request, exc: APIError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.param, exc.code)


async def llmzoo_error_handler(request: Request, exc: LlmzooError) -> JSONResponse:
    # EngineFullError: the bounded queue is full -> 429, so clients back off and retry (OpenAI's
    # rate-limit status); EngineStoppedError -> 503; every other LlmzooError is the request's own mistake -> 400.
    if isinstance(exc, EngineFullError):
        return error_response(429, str(exc), code="engine_full")
    if isinstance(exc, EngineStoppedError):  # the server's fault, not the request's
        return error_response(503, str(exc) + " (restart the server)", code="engine_stopped")
    return error_response(400, str(exc))


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI answers schema violations with 422 and its own shape; OpenAI answers 400 with the
    parameter named, which is what clients expect."""
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        return error_response(400, f"the request body is not valid JSON ({first.get('msg', '')}); send a JSON object")
    param = ".".join(location) or None
    message = first.get("msg", "invalid request")
    if first.get("type") == "extra_forbidden":
        message = f"unrecognized request argument supplied: {param}"
    elif param:
        message = f"{param}: {message}"
    return error_response(400, message, param=param)


async def http_error_handler(request: Request, exc) -> JSONResponse:
    """Starlette's own errors (an unknown route 404, a wrong method 405) in the same shape."""
    return error_response(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, f"internal server error ({type(exc).__name__}: {exc})")
