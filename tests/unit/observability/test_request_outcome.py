"""mixtral_requests_total's finish_reason for the requests that never finish normally.

The real engine's tests (tests/integration/test_metrics.py) cover answers that run to the end and
requests refused before the engine. A client leaving mid-request cannot be made over httpx's ASGI
transport, and an engine failing mid-stream cannot be made on demand, so here the server's own
disconnect and streaming code runs under the middleware with hand-driven ASGI messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from server.errors import EngineError, install_error_handlers
from server.http.disconnect import cancel_on_disconnect
from server.http.streaming import EventStream
from server.observability.metrics import HTTPMetricsMiddleware, RequestOutcome, ServerMetrics
from tests.helpers import metric_value

CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("reasons", "disconnected", "status", "expected"),
    [
        (["stop"], False, 200, "stop"),
        (["stop", "length", "stop"], False, 200, "length"),
        (["length"], True, 200, "length"),  # it had finished before the client left
        (None, True, 200, "abort"),
        (None, True, 499, "abort"),
        (None, False, 200, "error"),
        (None, False, 400, "none"),
        (None, False, 429, "none"),
        ([], False, 503, "none"),
    ],
)
def test_one_finish_reason_per_request(
    reasons: list[str] | None, disconnected: bool, status: int, expected: str
) -> None:
    outcome = RequestOutcome(finish_reasons=reasons, disconnected=disconnected)
    assert outcome.finish_reason(status) == expected


def _app(metrics: ServerMetrics) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(HTTPMetricsMiddleware, metrics=metrics)

    @app.post(CHAT)
    async def handler(request: Request) -> Response:
        if request.query_params.get("stream"):
            return EventStream(_failing_events())
        await cancel_on_disconnect(request, asyncio.sleep(3600))
        return Response()

    return app


async def _failing_events() -> AsyncGenerator[bytes, None]:
    yield b'{"choices": []}'
    raise EngineError("The engine failed this request.")


async def _call(app: FastAPI, query: bytes, client_leaves: bool) -> list[dict[str, Any]]:
    """One POST; the client leaves at once after its body, or stays until the response ends."""
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()
    bodies = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if bodies:
            return bodies.pop()
        if not client_leaves:
            await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": CHAT, "raw_path": CHAT.encode(), "query_string": query,
        "root_path": "", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("test", 80),
    }  # fmt: skip
    await app(scope, receive, send)
    return sent


def _requests(metrics: ServerMetrics, status: int, finish_reason: str) -> float:
    text = metrics.render().decode()
    labels = f'endpoint="{CHAT}",finish_reason="{finish_reason}",model="m",status="{status}"'
    return metric_value(text, "mixtral_requests_total", labels)


async def test_a_client_that_leaves_before_the_answer_is_counted_as_abort() -> None:
    metrics = ServerMetrics(model="m")
    sent = await _call(_app(metrics), b"", client_leaves=True)
    assert sent[0]["status"] == 499
    assert _requests(metrics, 499, "abort") == 1


async def test_a_stream_that_fails_after_it_began_is_counted_as_error() -> None:
    metrics = ServerMetrics(model="m")
    sent = await _call(_app(metrics), b"stream=1", client_leaves=False)
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert b'"error"' in body and body.endswith(b"data: [DONE]\n\n")
    assert _requests(metrics, 200, "error") == 1
    assert _requests(metrics, 200, "abort") == 0
