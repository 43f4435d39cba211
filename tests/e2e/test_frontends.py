"""--api-server-count 2: two HTTP front-end processes on one engine core.

Concurrent requests on separate connections spread over both, all complete, and /metrics on
either process counts all of them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server_process import running_server
from tests.helpers import chat, metric_value, stream_events

REQUESTS = 16
MAX_TOKENS = 12
CHAT_OK = 'route="/v1/chat/completions",status="200"'
CHAT_LENGTH = 'endpoint="/v1/chat/completions",finish_reason="length",model="tiny-mixtral",status="200"'


async def _one(url: str, i: int) -> int:
    """Each request on its own connection, as separate users would come."""
    body = chat(f"request {i}", max_tokens=MAX_TOKENS, ignore_eos=True, temperature=0)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        if i % 2:
            streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
            events = await stream_events(http, "/v1/chat/completions", streamed)
            usage: dict[str, Any] = events[-1]["usage"]
        else:
            resp = await http.post("/v1/chat/completions", json=body)
            assert resp.status_code == 200, resp.text
            usage = resp.json()["usage"]
    completion_tokens: int = usage["completion_tokens"]
    return completion_tokens


def _scrape(url: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as http:  # a new connection: any front end may answer
        resp = http.get("/metrics")
        assert resp.status_code == 200
        return resp.text


def _per_server(text: str) -> dict[str, float]:
    return {i: metric_value(text, "mixtral_api_server_requests_total", f'api_server="{i}"') for i in "01"}


async def test_two_front_ends_share_one_engine_and_one_metrics_view(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with running_server("--api-server-count", "2", "--max-model-len", "1024", log=log) as url:
        tokens = await asyncio.gather(*(_one(url, i) for i in range(REQUESTS)))
        assert tokens == [MAX_TOKENS] * REQUESTS

        scrapes = [_scrape(url) for _ in range(6)]
    # Every scrape, whichever process answered it, sees all requests of both processes.
    for text in scrapes:
        assert metric_value(text, "mixtral_http_requests_total", CHAT_OK) == REQUESTS
        assert metric_value(text, "mixtral_generation_tokens_total") == REQUESTS * MAX_TOKENS
        assert metric_value(text, "mixtral_requests_total", CHAT_LENGTH) == REQUESTS
        assert metric_value(text, "mixtral_time_to_first_token_seconds_count") == REQUESTS
        # The engine's timings, from each front end's own requests; the warm-up is not counted.
        assert metric_value(text, "mixtral_inter_token_latency_seconds_count") == REQUESTS * (MAX_TOKENS - 1)
        assert metric_value(text, "mixtral_request_queue_time_seconds_count") == REQUESTS
    per_server = _per_server(scrapes[-1])
    assert all(count > 0 for count in per_server.values()), per_server
    all_routes = sum(
        float(line.rpartition(" ")[2])
        for line in scrapes[-1].splitlines()
        if line.startswith("mixtral_http_requests_total{")
    )
    assert sum(per_server.values()) == all_routes
    text = log.read_text()
    assert "front end 0 of 2" in text and "front end 1 of 2" in text
    assert text.count("warm-up: ") == 1  # one engine, warmed once
