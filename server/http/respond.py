"""The common end of every generating route: admit, start the engine, stream or collect, give back.

Chat and completions build their engine requests differently; from there on they are the same:
the request is admitted (or refused with 429 before anything starts), its deltas hold the ticket,
and a deadline (the server's `--request-timeout`, shortened by the request's own `timeout`) cuts
the work with a clear error. Whatever way the response ends, the ticket is given back.
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
from server.errors import RequestTimeoutError
from server.http.auth import Caller
from server.http.deps import ServerState
from server.http.disconnect import cancel_on_disconnect
from server.http.streaming import EventStream
from server.observability import request_context

StreamRender = Callable[[DeltaStream], AsyncGenerator[bytes, None]]
CollectRender = Callable[[DeltaStream], Coroutine[Any, Any, dict[str, Any]]]


def deadline(state: ServerState, requested: float | None) -> float | None:
    """Event-loop time by which the request must end; None: no deadline."""
    limits = [t for t in (state.settings.request_timeout, requested) if t is not None]
    return asyncio.get_running_loop().time() + min(limits) if limits else None


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
) -> Response:
    """`stream` set: an SSE response of its events; else the JSON body `collect` builds."""
    max_new = sum(c.request.sampling.max_tokens for c in choices)
    ticket = state.admission.admit(caller.key, len(choices), prompt_tokens, max_new)
    try:
        deltas = Held(state.admission, ticket, fanout.start(state.engine, choices))
    except BaseException:
        state.admission.release(ticket, 0)
        raise
    request_context.record_engine_requests(c.request.request_id for c in choices)
    when = deadline(state, timeout)
    if stream is not None:
        return EventStream(stream(deltas), deadline=when, on_close=deltas.aclose)
    try:
        async with asyncio.timeout_at(when):
            result = await cancel_on_disconnect(request, collect(deltas))
    except TimeoutError:
        raise RequestTimeoutError(
            "The request passed its deadline (the server's or its own `timeout`) and was stopped."
        ) from None
    finally:
        await deltas.aclose()
    return JSONResponse(result)
