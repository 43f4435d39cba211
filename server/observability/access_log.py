"""One log line per HTTP request, written when the request ends (for a stream: when the stream
ends), and the request's id on both sides of it.

X-Request-Id: a client's well-formed id is kept (a proxy's or a tracer's id then joins our line to
theirs), anything else is replaced by a new one; either way the response carries it back. Handlers
read it, and report what they learn, through server/observability/request_context.py.

Pure ASGI, like HTTPMetricsMiddleware: BaseHTTPMiddleware would buffer and break streaming.

What a client sent and what it got (prompts, outputs) reaches the log only with
--log-request-content: then the line also holds the request body and the response body (for a
stream: its events), each cut at CONTENT_LIMIT bytes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.observability import request_context
from server.observability.request_context import REQUEST_ID_HEADER, RequestContext

logger = logging.getLogger("server.access")

CONTENT_LIMIT = 64 << 10


@dataclass(slots=True)
class _Exchange:
    """What the middleware itself sees of one request."""

    start: float
    status: int = 500  # if the app raised before it responded
    first_byte: float | None = None
    responded: bool = False
    disconnected: bool = False
    request_body: bytearray | None = None
    response_body: bytearray | None = None

    def on_receive(self, message: Message) -> None:
        if message["type"] == "http.disconnect" and not self.responded:
            self.disconnected = True
        elif message["type"] == "http.request" and self.request_body is not None:
            _keep(self.request_body, message.get("body", b""))

    def on_send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body and self.first_byte is None:
                self.first_byte = time.perf_counter()
            if self.response_body is not None:
                _keep(self.response_body, body)
            if not message.get("more_body", False):
                self.responded = True


def _keep(buffer: bytearray, chunk: bytes) -> None:
    room = CONTENT_LIMIT - len(buffer)
    if room > 0:
        buffer.extend(chunk[:room])


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key.lower() == name), None)


@dataclass(slots=True)
class AccessLine:
    """The fields of one access line, in the order they are written."""

    request_id: str
    method: str
    path: str  # the route template: bounded, and free of what a client put in the URL
    status: int
    duration_ms: float
    ttfb_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reasons: list[str] | None
    engine_request_ids: list[str]
    api_key: str | None
    client: str | None
    client_disconnected: bool
    content: dict[str, str] = field(default_factory=dict)

    def extra(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "content"}
        return fields | self.content


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def access_line(scope: Scope, exchange: _Exchange, context: RequestContext, end: float) -> AccessLine:
    route = scope.get("route")
    client = scope.get("client")
    content = {}
    for name, body in (("request_body", exchange.request_body), ("response_body", exchange.response_body)):
        if body is not None:
            content[name] = body.decode("utf-8", errors="replace")
    return AccessLine(
        request_id=context.request_id,
        method=scope["method"],
        path=getattr(route, "path", None) or "unmatched",
        status=exchange.status,
        duration_ms=_ms(end - exchange.start),
        ttfb_ms=_ms(exchange.first_byte - exchange.start) if exchange.first_byte is not None else None,
        prompt_tokens=context.prompt_tokens,
        completion_tokens=context.completion_tokens,
        finish_reasons=context.finish_reasons,
        engine_request_ids=context.engine_request_ids,
        api_key=context.api_key,
        client=client[0] if client else None,
        client_disconnected=exchange.disconnected,
        content=content,
    )


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, log_content: bool = False) -> None:
        self.app = app
        self.log_content = log_content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(time.perf_counter())
        if self.log_content:
            exchange.request_body, exchange.response_body = bytearray(), bytearray()
        request_id = request_context.accept_request_id(_header(scope, REQUEST_ID_HEADER.encode()))
        context = RequestContext(request_id)

        async def receive_wrapper() -> Message:
            message = await receive()
            exchange.on_receive(message)
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = context.request_id
            exchange.on_send(message)
            await send(message)

        with request_context.opened(context):
            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            finally:
                line = access_line(scope, exchange, context, time.perf_counter())
                logger.info("%s %s %d", line.method, line.path, line.status, extra=line.extra())
