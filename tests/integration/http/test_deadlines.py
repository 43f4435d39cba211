"""Deadlines on the real engine: when one passes, the engine work stops and the client is told.

Whose deadline it was decides the status: the server's `--request-timeout` is a 504 (a server
outcome), the request's own `timeout` a 408 (the client's), which the metrics keep out of what the
error-rate alert (deploy/prometheus/alerts.yml, MixtralErrorRateHigh) counts: 5xx statuses and
streams with finish_reason="error"."""

from __future__ import annotations

import asyncio
import json

from server.engine.base import Engine
from tests.app_client import app_client
from tests.helpers import chat, sse_events

LONG = {"max_tokens": 600, "ignore_eos": True}  # seconds of work for the tiny model on a CPU


async def engine_idle(engine: Engine) -> bool:
    for _ in range(20):
        if engine.stats().running == 0 and engine.stats().waiting == 0:
            return True
        await asyncio.sleep(0.05)
    return False


def alerting_requests(metrics: str) -> float:
    """What MixtralErrorRateHigh's numerator counts: 5xx answers and streams that failed after 200."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("mixtral_requests_total{") and (
            'status="5' in line or 'finish_reason="error"' in line
        ):
            total += float(line.rpartition(" ")[2])
    return total


async def test_server_request_timeout_is_a_504_and_stops_the_engine_work(engine: Engine) -> None:
    async with app_client(engine, request_timeout=0.3) as http:
        resp = await http.post("/v1/chat/completions", json=chat("Go on", **LONG))
        assert resp.status_code == 504
        error = resp.json()["error"]
        assert error["code"] == "request_timeout" and error["type"] == "timeout_error"
        assert await engine_idle(engine)
        state = http.app_state.server  # type: ignore[attr-defined]
        assert state.admission.in_flight() == (0, 0)
        assert alerting_requests((await http.get("/metrics")).text) == 1


async def test_the_requests_own_timeout_is_a_408_counted_apart_from_server_errors(engine: Engine) -> None:
    async with app_client(engine) as http:  # the server's deadline: the default 600 s
        resp = await http.post("/v1/chat/completions", json=chat("Go on", timeout=0.3, **LONG))
        assert resp.status_code == 408, resp.text
        error = resp.json()["error"]
        assert error == {
            "message": error["message"],
            "type": "timeout_error",
            "param": "timeout",
            "code": "deadline_exceeded",
        }
        # 0.001 s, as the report had it: over before the engine could answer.
        tiny = await http.post("/v1/chat/completions", json=chat("Go on", timeout=0.001, max_tokens=4))
        assert tiny.status_code == 408
        streamed = await http.post(
            "/v1/completions", json={"prompt": "Go on", "stream": True, "timeout": 0.3, **LONG}
        )
        assert streamed.status_code == 200
        events = sse_events(streamed.text)
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == "deadline_exceeded"
        assert await engine_idle(engine)
        metrics = (await http.get("/metrics")).text
        assert alerting_requests(metrics) == 0
        assert metrics.count('status="408"') >= 1 and 'finish_reason="timeout"' in metrics
        state = http.app_state.server  # type: ignore[attr-defined]
        assert state.admission.in_flight() == (0, 0)


async def test_stream_past_its_deadline_ends_with_an_error_event(engine: Engine) -> None:
    async with app_client(engine, request_timeout=0.3) as http:  # the server's default deadline
        resp = await http.post("/v1/completions", json={"prompt": "Go on", "stream": True, **LONG})
        assert resp.status_code == 200
        events = sse_events(resp.text)
        assert events[-1] == "[DONE]"
        last = json.loads(events[-2])
        assert last["error"]["code"] == "request_timeout"
        assert any("choices" in json.loads(e) for e in events[:-2])  # tokens came before the cut
        assert await engine_idle(engine)


async def test_a_request_may_shorten_but_not_extend_the_server_deadline(engine: Engine) -> None:
    async with app_client(engine, request_timeout=0.3) as http:
        resp = await http.post("/v1/chat/completions", json=chat("Go on", timeout=3600, **LONG))
        assert resp.status_code == 504  # the server's deadline cut it: a 504, not the client's 408
        quick = await http.post("/v1/chat/completions", json=chat("Hi", timeout=60, max_tokens=2))
        assert quick.status_code == 200
