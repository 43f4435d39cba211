"""SSE for every streaming endpoint: data events, an error event if the stream fails after it
started, then `data: [DONE]`; keep-alive comments while the stream is quiet.

Events arrive as single-line JSON bytes (orjson never writes a raw newline), so an event is framed
as `data: ` + payload + a blank line, nothing to split or escape. Each event is one ASGI send.

Why our own response and not sse-starlette's EventSourceResponse: that one builds a ServerSentEvent
per event (a StringIO, a regex split, an encode) and opens an anyio cancel scope around every send,
about 9 us per event on a 2-core dev machine, most of what a streamed token cost in this package
(bench/results/2026-11-23-frontend-profile). What we used from it is kept here: a watcher races the
client's disconnect against the body in one task group; when the client goes, the body is
cancelled, the `aclosing` below closes the event source, and that closes the engine streams, which
abort their engine requests at once. One difference: on server shutdown, open streams are not cut
at once; uvicorn lets them finish for its graceful shutdown timeout, then cancels them, which aborts
them the same way (and uvicorn logs the cancelled request as an error).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime

import anyio
from anyio import CancelScope
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from server.errors import APIError, EngineError, RequestTimeoutError, error_body
from server.http.disconnect import count_client_disconnect

logger = logging.getLogger(__name__)

PING_SECONDS = 15.0
DONE = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def _error_event(exc: APIError) -> bytes:
    return b"data: " + json.dumps(error_body(exc)).encode() + b"\n\n"


TIMEOUT_EVENT = _error_event(
    RequestTimeoutError("The request passed its deadline (the server's or its own `timeout`): stopped.")
)


async def _frames(events: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(events):
        try:
            async for payload in events:
                yield b"data: " + payload + b"\n\n"
        except APIError as exc:
            logger.warning("stream ended with an error: %s", exc.message)
            yield _error_event(exc)
        except Exception:
            logger.exception("stream failed")
            yield _error_event(EngineError("Internal error while streaming."))
    yield DONE


class EventStream(Response):
    """`text/event-stream` of the JSON payloads `events` yields, ended by `data: [DONE]`."""

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        ping_seconds: float = PING_SECONDS,
        *,
        deadline: float | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`deadline`: event-loop time when the stream is cut with a timeout error event.
        `on_close`: awaited when the response ends in any way, even if `events` never started
        (a client gone before the first byte): what the request holds is given back there."""
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)
        self._events = events
        self._ping_seconds = ping_seconds
        self._deadline = math.inf if deadline is None else deadline
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._respond(scope, receive, send)
        finally:
            if self._on_close is not None:
                with anyio.CancelScope(shield=True):
                    await self._on_close()

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, scope, receive, group.cancel_scope)
            group.start_soon(self._ping, send)
            try:
                await self._stream(send)
            except Exception as exc:  # raised below, outside the group, so not as an ExceptionGroup
                failure = exc
            group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.background is not None:
            await self.background()

    async def _stream(self, send: Send) -> None:
        frames = _frames(self._events)
        with anyio.CancelScope(deadline=self._deadline) as deadline:
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
        if deadline.cancelled_caught:
            logger.warning("stream passed its deadline; its engine work was stopped")
            await send({"type": "http.response.body", "body": TIMEOUT_EVENT + DONE, "more_body": True})

    async def _ping(self, send: Send) -> None:
        """A comment line now and then keeps proxies from closing a quiet stream (a long queue wait)."""
        while True:
            await anyio.sleep(self._ping_seconds)
            comment = f": ping - {datetime.now(UTC)}\n\n".encode()
            await send({"type": "http.response.body", "body": comment, "more_body": True})


async def _cancel_on_disconnect(scope: Scope, receive: Receive, cancel_scope: CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    count_client_disconnect(scope)
    cancel_scope.cancel()
