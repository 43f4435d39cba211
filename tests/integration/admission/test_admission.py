"""Bounded admission and per-key limits on the real engine: refused whole with 429 and Retry-After,
and nothing admitted is lost."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any

import httpx

from server.engine.base import Engine
from tests.app_client import app_client
from tests.helpers import chat, metric_value, sse_events

logger = logging.getLogger(__name__)


async def _outcome(http: httpx.AsyncClient, i: int, headers: dict[str, str] | None = None) -> str:
    """'completed' only for a full answer: every token, a finish reason and [DONE]."""
    body = chat(f"Request {i}", max_tokens=16, ignore_eos=True, stream=True)
    body["stream_options"] = {"include_usage": True}
    resp = await http.post("/v1/chat/completions", json=body, headers=headers or {})
    if resp.status_code == 429:
        assert int(resp.headers["retry-after"]) >= 1
        assert 0 < int(resp.headers["retry-after-ms"]) <= 1000 * int(resp.headers["retry-after"])
        if headers is None and resp.json()["error"]["code"] == "server_overloaded":
            assert len(resp.headers["x-retry-token"]) == 32  # an anonymous client's place in line
        code: str = resp.json()["error"]["code"]
        return f"rejected:{code}"
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    chunks: list[dict[str, Any]] = [json.loads(e) for e in events[:-1]]
    finished = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    tokens = chunks[-1]["usage"]["completion_tokens"]
    complete = events[-1] == "[DONE]" and "length" in finished and tokens == 16
    return "completed" if complete else "incomplete"


async def test_overload_is_refused_with_retry_after_and_no_request_is_lost(engine: Engine) -> None:
    sent = 40
    async with app_client(engine, max_in_flight=4) as http:
        outcomes = Counter(await asyncio.gather(*(_outcome(http, i) for i in range(sent))))
        metrics = (await http.get("/metrics")).text
        state = http.app_state.server  # type: ignore[attr-defined]
        in_flight = state.admission.in_flight()
    logger.info("overload: sent %d, outcomes %s", sent, dict(outcomes))
    rejected = outcomes["rejected:server_overloaded"]
    assert outcomes["completed"] >= 4 and rejected >= 1
    assert outcomes["completed"] + rejected == sent  # lost: 0, incomplete: 0
    assert metric_value(metrics, "mixtral_rejected_requests_total", 'reason="server_overloaded"') == rejected
    assert in_flight == (0, 0)
    for _ in range(20):
        if engine.stats().running == 0:
            break
        await asyncio.sleep(0.05)
    assert engine.stats().running == 0


async def test_per_key_concurrency_and_request_rate(engine: Engine) -> None:
    keys = {"Authorization": "Bearer sk-a"}
    limits = {"key_max_concurrent": 2, "key_requests_per_minute": 5}
    async with app_client(engine, api_keys=["a:sk-a"], **limits) as http:
        outcomes = Counter(await asyncio.gather(*(_outcome(http, i, keys) for i in range(4))))
        assert outcomes == {"completed": 2, "rejected:concurrency_limit_exceeded": 2}
        # Two of the five requests a minute are used; three more, then the bucket is empty.
        later = [await _outcome(http, i, keys) for i in range(4)]
        assert later == ["completed"] * 3 + ["rejected:requests_per_minute_exceeded"]
        resp = await http.post("/v1/chat/completions", json=chat("x", max_tokens=1), headers=keys)
        assert resp.status_code == 429
        assert 1 <= int(resp.headers["retry-after"]) <= 12  # one request refills in 12 s
        metrics = (await http.get("/metrics")).text
    assert metric_value(metrics, "mixtral_api_key_requests_in_flight", 'key="a"') == 0
