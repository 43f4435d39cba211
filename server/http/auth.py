"""Who is calling: the route dependencies that check `Authorization: Bearer KEY` against the
configured keys (server/admission/keys.py) and name the caller for logs, metrics and limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from server.errors import AuthenticationError
from server.http.deps import app_state
from server.observability.request_context import record_api_key


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request: a key's name, or None when the server has no keys."""

    key: str | None


async def get_caller(request: Request) -> Caller:
    """Route dependency of the API routes: 401 unless the request carries a configured key."""
    app = app_state(request.app)
    if app.keys is None:
        return Caller(None)
    try:
        name = app.keys.identify(request.headers.get("authorization"))
    except AuthenticationError:
        app.metrics.rejections.labels(reason="auth").inc()
        raise
    record_api_key(name)  # the access log line names the key
    return Caller(name)


async def check_operations_key(request: Request) -> None:
    """Route dependency of /health, /ready and /metrics: open unless --protect-operations."""
    app = app_state(request.app)
    if app.keys is not None and app.settings.protect_operations:
        app.keys.identify(request.headers.get("authorization"))


CallerDep = Annotated[Caller, Depends(get_caller)]
