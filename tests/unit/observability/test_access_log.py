"""X-Request-Id and the one access line per request, on a small app: no engine needed.

The real engine's requests (token counts, finish reasons, prompt text kept out) are in
tests/integration/observability/test_access_log.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse

from server.observability import request_context
from server.observability.logs import JsonFormatter, TextFormatter
from server.observability.metrics import ServerMetrics
from server.observability.middleware import ObserveMiddleware
from tests.log_capture import captured_logs

GENERATED = re.compile(r"[0-9a-f]{32}")
handler_log = logging.getLogger("tests.handler")


def small_app(log_content: bool = False) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str) -> PlainTextResponse:
        handler_log.warning("handling %s", item)
        request_context.record_api_key("team-a")
        return PlainTextResponse(f"item {item}")

    @app.post("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for word in (b"one ", b"two ", b"three"):
                await asyncio.sleep(0.01)
                yield word
            request_context.record_usage(7, 3, ["stop"])
            handler_log.warning("stream ended")

        return StreamingResponse(body())

    app.add_middleware(ObserveMiddleware, metrics=ServerMetrics(), log_content=log_content)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_well_formed_request_id_is_kept_and_returned() -> None:
    sent = "trace-01HZX5Q2:span/7+Ab=="
    async with client(small_app()) as http:
        response = await http.get("/items/a", headers={"X-Request-Id": sent})
    assert response.headers["x-request-id"] == sent


@pytest.mark.parametrize("bad", ["has space", "x" * 129, 'quote"d', "semi;colon", "", "ünï"])
async def test_a_malformed_request_id_is_replaced_never_echoed(bad: str) -> None:
    async with client(small_app()) as http:
        response = await http.get("/items/a", headers={"X-Request-Id": bad.encode()})
    assert GENERATED.fullmatch(response.headers["x-request-id"])


async def test_without_a_request_id_each_request_gets_its_own() -> None:
    async with client(small_app()) as http:
        ids = {(await http.get("/items/a")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(GENERATED.fullmatch(i) for i in ids)


async def test_one_line_per_request_with_route_template_key_name_and_id_on_handler_records() -> None:
    with captured_logs() as logs:
        async with client(small_app()) as http:
            response = await http.get("/items/secret-item-name", headers={"X-Request-Id": "abc-123"})
    (line,) = logs.access()
    assert line.request_id == "abc-123"  # type: ignore[attr-defined]
    assert (line.method, line.path, line.status) == ("GET", "/items/{item}", 200)  # type: ignore[attr-defined]
    assert line.api_key == "team-a"  # type: ignore[attr-defined]
    assert line.client == "127.0.0.1"  # type: ignore[attr-defined]
    assert line.duration_ms >= line.ttfb_ms > 0  # type: ignore[attr-defined]
    handled = next(r for r in logs.records if r.name == "tests.handler")
    assert handled.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert "secret-item-name" not in logs.access()[0].getMessage()


async def test_a_stream_is_logged_once_when_it_ends_with_what_the_stream_reported() -> None:
    with captured_logs() as logs:
        async with client(small_app()) as http:
            response = await http.post("/stream")
    assert response.text == "one two three"
    names = [r.name for r in logs.records if r.name in ("tests.handler", "server.access")]
    assert names == ["tests.handler", "server.access"]  # the line comes after the stream's end
    (line,) = logs.access()
    assert (line.prompt_tokens, line.completion_tokens) == (7, 3)  # type: ignore[attr-defined]
    assert line.finish_reasons == ["stop"]  # type: ignore[attr-defined]
    assert line.duration_ms >= 30  # type: ignore[attr-defined]


async def test_the_json_line_holds_every_field_and_text_mode_lists_them() -> None:
    with captured_logs() as logs:
        async with client(small_app()) as http:
            await http.post("/stream", headers={"X-Request-Id": "req-1"})
    (record,) = logs.access()
    line = json.loads(JsonFormatter().format(record))
    assert list(line)[:5] == ["time", "level", "logger", "pid", "message"]
    assert line["message"] == "POST /stream 200"
    expected = {
        "request_id": "req-1",
        "method": "POST",
        "path": "/stream",
        "status": 200,
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "finish_reasons": ["stop"],
        "engine_request_ids": [],
        "api_key": None,
        "client": "127.0.0.1",
        "client_disconnected": False,
    }
    assert {k: line[k] for k in expected} == expected
    assert isinstance(line["duration_ms"], float) and isinstance(line["ttfb_ms"], float)
    assert line["time"].endswith("+00:00")
    text = TextFormatter().format(record)
    assert "POST /stream 200 request_id=req-1" in text and "finish_reasons=stop" in text


async def test_bodies_are_logged_only_when_asked_for() -> None:
    for log_content in (False, True):
        with captured_logs() as logs:
            async with client(small_app(log_content)) as http:
                await http.post("/stream", content=b"prompt-marker")
        (line,) = logs.access()
        rendered = "\n".join(logs.rendered())
        assert ("prompt-marker" in rendered) is log_content
        assert ("one two three" in rendered) is log_content
        if log_content:
            assert line.request_body == "prompt-marker"  # type: ignore[attr-defined]
            assert line.response_body == "one two three"  # type: ignore[attr-defined]


async def test_a_handler_that_raises_is_logged_as_500() -> None:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(ObserveMiddleware, metrics=ServerMetrics())
    with captured_logs() as logs:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test"
        ) as http:
            assert (await http.get("/boom")).status_code == 500
    (line,) = logs.access()
    assert line.status == 500  # type: ignore[attr-defined]
