"""The one middleware that observes every HTTP exchange: it opens the exchange's record
(server/observability/request_context.py), notes what passes on the wire, and when the exchange
ends (for a stream: when the stream ends) counts it in the metrics and writes its access line, both
from that same record.

X-Request-Id: a client's well-formed id is kept (a proxy's or a tracer's id then joins our line to
theirs), anything else is replaced by a new one; either way the response carries it back.

Pure ASGI (starlette.types only): BaseHTTPMiddleware would buffer and break streaming. It sits
outermost, so it sees the answer of every middleware inside it (CORS, the drain's 503, the body
limit's 413) as the client does.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.observability import access_log, request_context
from server.observability.metrics import ServerMetrics
from server.observability.request_context import REQUEST_ID_HEADER, RequestContext

_HEADER = REQUEST_ID_HEADER.encode("latin-1")


def _keep(buffer: bytearray | None, chunk: bytes) -> None:
    if buffer is not None:
        room = access_log.CONTENT_LIMIT - len(buffer)
        if room > 0:
            buffer.extend(chunk[:room])


def _received(context: RequestContext, message: Message) -> None:
    if message["type"] == "http.disconnect" and not context.responded:
        context.disconnected = True
    elif message["type"] == "http.request":
        _keep(context.request_body, message.get("body", b""))


def _sending(context: RequestContext, message: Message) -> None:
    if message["type"] == "http.response.start":
        context.status = message["status"]
        context.started = True
        headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER]
        message["headers"] = [*headers, (_HEADER, context.request_id.encode("latin-1"))]
    elif message["type"] == "http.response.body":
        body = message.get("body", b"")
        if body and context.first_byte is None:
            context.first_byte = time.perf_counter()
        _keep(context.response_body, body)
        if not message.get("more_body", False):
            context.responded = True


def _open(scope: Scope, log_content: bool) -> RequestContext:
    raw_id = next((value for key, value in scope["headers"] if key.lower() == _HEADER), None)
    request_id = request_context.accept_request_id(raw_id)
    client = scope.get("client")
    context = RequestContext(request_id, method=scope["method"], client=client[0] if client else None)
    if log_content:
        context.request_body, context.response_body = bytearray(), bytearray()
    return context


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics, log_content: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_content = log_content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = _open(scope, self.log_content)

        async def receive_wrapper() -> Message:
            message = await receive()
            _received(context, message)
            return message

        async def send_wrapper(message: Message) -> None:
            _sending(context, message)
            await send(message)

        with request_context.opened(context):
            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            finally:
                end = time.perf_counter()
                context.route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.metrics.count_exchange(context)
                access_log.log_exchange(context, end)
