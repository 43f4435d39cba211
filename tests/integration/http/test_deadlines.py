"""Deadlines on the real engine: when one passes, the engine work stops and the client is told."""

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


async def test_request_timeout_is_a_504_and_stops_the_engine_work(engine: Engine) -> None:
    async with app_client(engine) as http:
        resp = await http.post("/v1/chat/completions", json=chat("Go on", timeout=0.3, **LONG))
        assert resp.status_code == 504
        error = resp.json()["error"]
        assert error["code"] == "request_timeout" and error["type"] == "timeout_error"
        assert await engine_idle(engine)
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
        assert resp.status_code == 504
        quick = await http.post("/v1/chat/completions", json=chat("Hi", timeout=60, max_tokens=2))
        assert quick.status_code == 200
