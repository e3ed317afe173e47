"""An SSE response that drops a client which stops reading: when one chunk cannot be handed to the
connection for `idle_timeout` seconds (uvicorn holds `send` while the socket's buffers are full),
the request is cancelled, its engine rows freed, and the connection closed."""

from __future__ import annotations

import asyncio
import logging

from starlette.responses import StreamingResponse

log = logging.getLogger("llmzoo.serve")


class ClientIdle(Exception):
    pass


class IdleTimeoutStreamingResponse(StreamingResponse):
    def __init__(self, content, *, idle_timeout: float | None, on_idle, **kwargs) -> None:
        super().__init__(content, **kwargs)
        self.idle_timeout, self.on_idle = idle_timeout, on_idle

    async def __call__(self, scope, receive, send) -> None:
        if self.idle_timeout is None:
            return await super().__call__(scope, receive, send)

        async def timed_send(message) -> None:
            try:
                await asyncio.wait_for(send(message), self.idle_timeout)
            except TimeoutError:
                raise ClientIdle() from None

        try:
            await super().__call__(scope, receive, timed_send)
        except BaseException as error:  # anyio's task group may wrap it in an exception group
            if not _is_idle(error):
                raise
            self.on_idle()
            log.warning("a streaming client read nothing for %g s; its request was cancelled", self.idle_timeout)


def _is_idle(error: BaseException) -> bool:
    if isinstance(error, ClientIdle):
        return True
    return isinstance(error, BaseExceptionGroup) and all(_is_idle(e) for e in error.exceptions)
