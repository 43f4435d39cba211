"""SSE for every streaming endpoint: data events, an error event if the stream fails after it
started, then `data: [DONE]`; keep-alive comments while the stream is quiet. The Responses API
frames its events its own way (`Framing`); the rest of this holds for it the same.

Events arrive as single-line JSON bytes (orjson never writes a raw newline), so an event is framed
as `data: ` + payload + a blank line, nothing to split or escape. Each event is one ASGI send.

Why our own response and not sse-starlette's EventSourceResponse: that one builds a ServerSentEvent
per event (a StringIO, a regex split, an encode) and opens an anyio cancel scope around every send,
about 9 us per event on a 2-core dev machine, most of what a streamed token cost in this package
(bench/results/2026-11-23-frontend-profile). What we used from it is kept here: a watcher races the
client's disconnect against the body in one task group; when the client goes, the body is
cancelled, the `aclosing` below closes the event source, and that closes the engine streams, which
abort their engine requests at once. Two more things end a stream early, each with an error event
and `[DONE]` in a properly ended body: its deadline (a cancel scope), and the server's drain deadline
(`stop`, which the watcher races the same way): the client learns the server is shutting down, and
the body is closed before the shared state it needs is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
from anyio import CancelScope
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from server.errors import (
    APIError,
    DeadlineExceededError,
    EngineError,
    EngineUnavailableError,
    RequestTimeoutError,
    error_body,
)
from server.http.disconnect import count_client_disconnect
from server.observability import request_context

logger = logging.getLogger(__name__)

PING_SECONDS = 15.0
DONE = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def _error_event(exc: APIError) -> bytes:
    return b"data: " + json.dumps(error_body(exc)).encode() + b"\n\n"


SERVER_TIMEOUT = RequestTimeoutError("The request passed the server's deadline (--request-timeout): stopped.")
SHUTTING_DOWN = EngineUnavailableError("The server is shutting down.", code="shutting_down")


@dataclass(frozen=True, slots=True)
class Framing:
    """How a stream's events go on the wire: chat and completions send each payload as `data: `,
    an error as an error body event, and end with `[DONE]`; the Responses API's events come framed
    (`event:` and `data:` lines), a failure is events of its own sequence, and nothing follows
    the last. `failure` is called when the stream fails, with the error to tell."""

    frame: Callable[[bytes], bytes]
    failure: Callable[[APIError], bytes]
    end: bytes


def _data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


DATA = Framing(_data, _error_event, DONE)


async def _frames(events: AsyncGenerator[bytes, None], framing: Framing) -> AsyncGenerator[bytes, None]:
    frame = framing.frame
    async with contextlib.aclosing(events):
        try:
            async for payload in events:
                yield frame(payload)
        except APIError as exc:
            logger.warning("stream ended with an error: %s", exc.message)
            yield framing.failure(exc)
        except Exception:
            logger.exception("stream failed")
            yield framing.failure(EngineError("Internal error while streaming."))
    if framing.end:
        yield framing.end


class EventStream(Response):
    """`text/event-stream` of the JSON payloads `events` yields, ended by `data: [DONE]`."""

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        ping_seconds: float = PING_SECONDS,
        *,
        deadline: float | None = None,
        deadline_error: APIError = SERVER_TIMEOUT,
        stop: Callable[[], Awaitable[None]] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        framing: Framing = DATA,
    ) -> None:
        """`deadline`: event-loop time when the stream is cut with `deadline_error` as its event.
        `stop`: returns when the server stops waiting for open requests (the drain deadline); the
        stream then ends with a `shutting_down` event.
        `on_close`: awaited when the response ends in any way, even if `events` never started
        (a client gone before the first byte): what the request holds is given back there.
        `framing`: chat's `data:` events and `[DONE]` unless told otherwise."""
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)
        self._events = events
        self._ping_seconds = ping_seconds
        self._deadline = math.inf if deadline is None else deadline
        self._deadline_error = deadline_error
        self._framing = framing
        self._client_deadline = isinstance(deadline_error, DeadlineExceededError)
        self._stop = stop
        self._stopped = CancelScope()
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
            if self._stop is not None:
                group.start_soon(self._stop_at, self._stop)
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
        frames = _frames(self._events, self._framing)
        with self._stopped, anyio.CancelScope(deadline=self._deadline) as deadline:
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
        if deadline.cancelled_caught:
            logger.warning("stream passed its deadline; its engine work was stopped")
            if self._client_deadline:
                request_context.record_client_deadline()
            ending = self._framing.failure(self._deadline_error) + self._framing.end
            await send({"type": "http.response.body", "body": ending, "more_body": True})
        elif self._stopped.cancelled_caught:
            logger.warning("stream cut at the shutdown deadline; its engine work was stopped")
            ending = self._framing.failure(SHUTTING_DOWN) + self._framing.end
            await send({"type": "http.response.body", "body": ending, "more_body": True})

    async def _stop_at(self, stop: Callable[[], Awaitable[None]]) -> None:
        await stop()
        self._stopped.cancel()

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
