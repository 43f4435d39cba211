"""Cancel a non-streaming request's work when its client goes away.

Starlette does not cancel a handler when the client disconnects; without this, an abandoned
request would keep its engine slot and KV cache until it finished. (Streams get the same in
server/http/streaming.py.) Both count each client that left in mixtral_client_disconnects_total.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request
from starlette.types import Scope

from server.errors import ClientDisconnectedError
from server.http.deps import app_state

T = TypeVar("T")


def count_client_disconnect(scope: Scope) -> None:
    """One more abandoned request on this route (its template, a bounded label)."""
    app = scope.get("app")
    if app is None:  # a handler or stream driven without an app (unit tests)
        return
    route = scope.get("route")
    app_state(app).metrics.client_disconnects.labels(endpoint=getattr(route, "path", "unmatched")).inc()


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class Stopped(Exception):
    """The work was cancelled because what it raced against came first."""


async def unless(stopper: Coroutine[Any, Any, object], work: Coroutine[Any, Any, T]) -> T:
    """`work`'s result, unless `stopper` finishes first: then `work` is cancelled, awaited to its
    end, and Stopped is raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(stopper)
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            # cancel() only asks; until the task has run its cancellation it is neither cancelled
            # nor done, and task.result() below would raise InvalidStateError (a 500, not a 499).
            await asyncio.wait({task})
    if task.cancelled():
        raise Stopped
    return task.result()


async def cancel_on_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T:
    try:
        return await unless(_wait_for_disconnect(request), work)
    except Stopped:
        count_client_disconnect(request.scope)
        raise ClientDisconnectedError("The client disconnected.") from None
