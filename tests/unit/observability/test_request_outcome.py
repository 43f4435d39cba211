"""mixtral_requests_total's finish_reason (and the access line) for the requests that never finish
normally.

The real engine's tests (tests/integration/observability/test_metrics.py) cover answers that run to
the end and requests refused before the engine. A client leaving mid-request cannot be made over
httpx's ASGI transport, and an engine failing mid-stream cannot be made on demand, so here the
server's own disconnect and streaming code runs under the middleware with hand-driven ASGI
messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from server.config import Settings
from server.errors import EngineError
from server.http.deps import AppState
from server.http.disconnect import cancel_on_disconnect
from server.http.error_handlers import install_error_handlers
from server.http.streaming import EventStream
from server.lifecycle import Lifecycle
from server.observability.metrics import ServerMetrics
from server.observability.middleware import ObserveMiddleware
from server.observability.request_context import RequestContext
from tests.helpers import metric_value
from tests.log_capture import captured_logs

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
    context = RequestContext("r", finish_reasons=reasons, disconnected=disconnected, status=status)
    assert context.finish_reason() == expected


def test_the_requests_own_deadline_is_its_own_finish_reason_not_an_error() -> None:
    """A stream cut by the request's own `timeout` is a 200 that did not finish, like a server
    failure, but the deadline was the client's: `timeout`, which the error-rate alert ignores."""
    assert RequestContext("r", client_deadline=True, status=200).finish_reason() == "timeout"
    assert RequestContext("r", client_deadline=True, status=408).finish_reason() == "timeout"


def _app(metrics: ServerMetrics) -> FastAPI:
    app = FastAPI()
    app.state.mixtral = AppState(Settings(), Lifecycle(shutdown_timeout=1), metrics, keys=None)
    install_error_handlers(app)
    app.add_middleware(ObserveMiddleware, metrics=metrics)

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


async def test_a_client_that_leaves_before_the_answer_is_counted_as_abort_and_logged_as_gone() -> None:
    metrics = ServerMetrics(model="m")
    with captured_logs() as logs:
        sent = await _call(_app(metrics), b"", client_leaves=True)
    assert sent[0]["status"] == 499
    assert _requests(metrics, 499, "abort") == 1
    (line,) = logs.access()  # the metric and the line are read from one record
    assert (line.path, line.status, line.client_disconnected) == (CHAT, 499, True)  # type: ignore[attr-defined]
    assert line.finish_reasons is None  # type: ignore[attr-defined]
    assert dict(sent[0]["headers"])[b"x-request-id"] == line.request_id.encode()  # type: ignore[attr-defined]


async def test_a_stream_that_fails_after_it_began_is_counted_as_error() -> None:
    metrics = ServerMetrics(model="m")
    sent = await _call(_app(metrics), b"stream=1", client_leaves=False)
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert b'"error"' in body and body.endswith(b"data: [DONE]\n\n")
    assert _requests(metrics, 200, "error") == 1
    assert _requests(metrics, 200, "abort") == 0
