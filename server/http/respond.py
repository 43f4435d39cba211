"""The common end of every generating route: admit, start the engine, stream or collect, give back.

Chat and completions build their engine requests differently; from there on they are the same:
the request is admitted (or refused with 429 before anything starts), its deltas hold the ticket,
and a deadline (the server's `--request-timeout`, shortened by the request's own `timeout`) cuts
the work with a clear error: the server's a 504, the client's own a 408 (its choice, its outcome).
At the drain deadline (server/lifecycle.py) what is still open ends with a `shutting_down` 503 or
stream event. Whatever way the response ends, the ticket is given back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from server.admission.gate import Held
from server.engine import fanout
from server.engine.fanout import DeltaStream
from server.errors import RETRY_TOKEN_HEADER, APIError, DeadlineExceededError, EngineUnavailableError
from server.http.auth import Caller
from server.http.deps import ServerState, app_state
from server.http.disconnect import Stopped, cancel_on_disconnect, unless
from server.http.streaming import DATA, SERVER_TIMEOUT, EventStream, Framing
from server.lifecycle import Lifecycle
from server.observability import request_context

StreamRender = Callable[[DeltaStream], AsyncGenerator[bytes, None]]
CollectRender = Callable[[DeltaStream], Coroutine[Any, Any, dict[str, Any]]]


CLIENT_DEADLINE = DeadlineExceededError(
    "The request passed its own deadline (its `timeout`) and was stopped.", param="timeout"
)


def deadline(state: ServerState, requested: float | None) -> tuple[float | None, APIError]:
    """Event-loop time by which the request must end (None: no deadline), and the error that tells
    whose deadline it was: the request's own `timeout` when it is the shorter one."""
    server = state.settings.request_timeout
    limits = [t for t in (server, requested) if t is not None]
    if not limits:
        return None, SERVER_TIMEOUT
    by_client = requested is not None and (server is None or requested < server)
    return asyncio.get_running_loop().time() + min(limits), CLIENT_DEADLINE if by_client else SERVER_TIMEOUT


async def _collect(
    request: Request, lifecycle: Lifecycle, work: Coroutine[Any, Any, dict[str, Any]]
) -> dict[str, Any]:
    """`work`, unless the client leaves (499) or the drain deadline comes first (503)."""
    try:
        return await unless(lifecycle.stopping(), cancel_on_disconnect(request, work))
    except Stopped:
        raise EngineUnavailableError("The server is shutting down.", code="shutting_down") from None


async def respond(
    request: Request,
    state: ServerState,
    caller: Caller,
    choices: list[fanout.Choice],
    *,
    prompt_tokens: int,
    timeout: float | None,
    stream: StreamRender | None,
    collect: CollectRender,
    framing: Framing = DATA,
) -> Response:
    """`stream` set: an SSE response of its events (put on the wire by `framing`); else the JSON
    body `collect` builds."""
    max_new = sum(c.request.sampling.max_tokens for c in choices)
    token = request.headers.get(RETRY_TOKEN_HEADER)
    ticket = await state.admission.enter(caller.key, len(choices), prompt_tokens, max_new, token=token)
    try:
        deltas = Held(state.admission, ticket, fanout.start(state.engine, choices))
    except BaseException:
        await state.admission.leave(ticket, 0)
        raise
    request_context.record_engine_requests(c.request.request_id for c in choices)
    when, late = deadline(state, timeout)
    lifecycle = app_state(request.app).lifecycle
    if stream is not None:
        return EventStream(
            stream(deltas),
            deadline=when,
            deadline_error=late,
            stop=lifecycle.stopping,
            on_close=deltas.aclose,
            framing=framing,
        )
    try:
        async with asyncio.timeout_at(when):
            result = await _collect(request, lifecycle, collect(deltas))
    except TimeoutError:
        if isinstance(late, DeadlineExceededError):
            request_context.record_client_deadline()
        raise type(late)(late.message, param=late.param) from None
    finally:
        await deltas.aclose()
    return JSONResponse(result)
