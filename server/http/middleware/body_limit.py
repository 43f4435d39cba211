"""413 for a request body over --max-body-bytes, before it is read into memory.

Pure ASGI (streams pass untouched). A declared Content-Length over the cap is refused at once, and
one within it passes straight through (the HTTP server reads no more than the declared length), so
that the answer's messages, a stream's chunks included, cross no wrapper of ours here. A chunked
body is counted as it arrives and refused when it passes the cap: the 413 goes out then, and the
app, which sees the client leave, stops reading.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import PayloadTooLargeError
from server.http.error_handlers import error_response
from server.observability.metrics import ServerMetrics


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, metrics: ServerMetrics) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    def _too_large(self) -> PayloadTooLargeError:
        self.metrics.rejections.labels(reason="body_too_large").inc()
        return PayloadTooLargeError(
            f"The request body is larger than this server's limit of {self.max_bytes} bytes.",
            code="request_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await error_response(self._too_large())(scope, receive, send)
            else:  # the HTTP server holds the body to its declared length: nothing to count
                await self.app(scope, receive, send)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            """Past the cap: answer 413 now and tell the app the client left, so it stops reading."""
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await error_response(self._too_large())(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # the app's own answer to the cut-off body goes nowhere
                await send(message)

        await self.app(scope, counted, guarded_send)
