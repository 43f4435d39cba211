"""Counts the requests in flight for the drain, and refuses new work while draining or after the
engine died (see server/lifecycle.py for why our drain and not uvicorn's)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import EngineUnavailableError
from server.http.error_handlers import error_response
from server.lifecycle import PROBE_PATHS, Lifecycle, Phase


class LifecycleMiddleware:
    """Counts requests in flight; refuses new work while draining or after the engine died."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        lifecycle = self.lifecycle
        if lifecycle.phase in (Phase.DRAINING, Phase.ENGINE_DEAD):
            await self._refuse(scope, receive, send)
            return
        lifecycle.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            lifecycle.in_flight -= 1

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.lifecycle.phase is Phase.DRAINING:
            exc = EngineUnavailableError("The server is shutting down.", code="shutting_down")
        else:
            exc = EngineUnavailableError("The engine has stopped; this server is restarting.")
        response = error_response(exc)
        response.headers["Connection"] = "close"  # a kept-alive connection would only get 503s
        await response(scope, receive, send)
