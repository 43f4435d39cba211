"""The FastAPI side of server/errors.py: every exception a request can raise becomes the table's
status and OpenAI-shaped body, including FastAPI's own validation errors and Starlette's 404/405."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import (
    APIError,
    AuthenticationError,
    EngineError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    error_body,
    error_headers,
    kind_of,
)
from server.http.validation import validation_error
from server.observability import request_context

logger = logging.getLogger(__name__)


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=kind_of(exc).status, headers=error_headers(exc))


_HTTP_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    405: NotFoundError,
    413: PayloadTooLargeError,
}


class UnexpectedErrorMiddleware:
    """An exception no handler expected becomes the table's 500 here, inside the app's middleware,
    so the answer still passes the observing middleware: it carries X-Request-Id, and the metrics
    and the access line count it. (Starlette answers such exceptions in its outermost middleware,
    past ours; that handler stays as the backstop for a failure in a middleware outside this one.)
    A response already started cannot be replaced: the exception goes on and the connection is cut
    (a stream reports its own failures as an SSE error event first; see streaming.py).

    Whether the response started is read from the exchange's record, which the observing middleware
    keeps anyway, rather than by wrapping `send`: a wrapper would be one more call per streamed
    chunk. Without a record (an app built without the observing middleware) it wraps `send`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = request_context.current()
        noted = _StartNoted(send) if context is None else None
        try:
            await self.app(scope, receive, send if noted is None else noted)
        except Exception:
            if noted.started if noted is not None else context is not None and context.started:
                raise
            logger.exception("unhandled error")
            await error_response(EngineError("Internal server error."))(scope, receive, send)


class _StartNoted:
    """`send`, noting whether the response's start went out."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


def install_error_handlers(app: FastAPI) -> None:
    """The handlers, and UnexpectedErrorMiddleware innermost of the app's middleware."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        cls = _HTTP_STATUS_ERRORS.get(exc.status_code, InvalidRequestError)
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404:
            detail = f"No route {request.method} {request.url.path}."
        elif exc.status_code == 405:
            detail = f"Method {request.method} is not allowed on {request.url.path}."
        resp = error_response(cls(detail))
        resp.status_code = exc.status_code
        resp.headers.update(exc.headers or {})  # e.g. Allow on 405
        return resp

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(EngineError("Internal server error."))

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_middleware(UnexpectedErrorMiddleware)
