"""CORS for browsers on other origins: off unless --cors-allow-origins names some.

Starlette's CORSMiddleware answers preflights before routing (so before any API-key check, as a
browser sends no credentials on a preflight) and exposes X-Request-Id, so a page can show it.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from server.config import Settings
from server.errors import RETRY_TOKEN_HEADER
from server.observability.request_context import REQUEST_ID_HEADER


def install_cors(app: FastAPI, settings: Settings) -> None:
    if not settings.cors_allow_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_allow_origins,
        allow_methods=settings.cors_allow_methods,
        allow_headers=settings.cors_allow_headers,
        allow_credentials=settings.cors_allow_credentials,
        # A page that honours a 429's wait must be able to read it, and keep its place in line.
        expose_headers=[REQUEST_ID_HEADER, "Retry-After", "retry-after-ms", RETRY_TOKEN_HEADER],
    )
