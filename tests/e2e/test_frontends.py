"""--api-server-count 2: two HTTP front-end processes on one engine core (the server shared with
test_load_faults, tests/e2e/conftest.py).

Concurrent requests on separate connections spread over both, all complete, and /metrics on either
process counts all of them; the engine gauges read what the engine did last, whichever front end
handled its reports last."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psutil

from tests.e2e.process_group import front_end_pids
from tests.e2e.server_process import ServerProcess
from tests.helpers import chat, metric_value, sse_events, stream_events

REQUESTS = 16
MAX_TOKENS = 12
CHAT_OK = 'route="/v1/chat/completions",status="200"'
CHAT_LENGTH = 'endpoint="/v1/chat/completions",finish_reason="length",model="tiny-mixtral",status="200"'
ENGINE = 'engine="0",model_name="tiny-mixtral"'
COUNTED = (
    ("mixtral_http_requests_total", CHAT_OK, REQUESTS),
    ("mixtral_generation_tokens_total", "", REQUESTS * MAX_TOKENS),
    ("mixtral_requests_total", CHAT_LENGTH, REQUESTS),
    ("mixtral_time_to_first_token_seconds_count", "", REQUESTS),
    # The engine's timings, from each front end's own requests.
    ("mixtral_inter_token_latency_seconds_count", "", REQUESTS * (MAX_TOKENS - 1)),
    ("mixtral_request_queue_time_seconds_count", "", REQUESTS),
    # vLLM's own families, each front end counting its own requests, summed over both.
    ("vllm:generation_tokens_total", ENGINE, REQUESTS * MAX_TOKENS),
    ("vllm:request_success_total", 'engine="0",finished_reason="length",model_name="tiny-mixtral"', REQUESTS),
    ("vllm:e2e_request_latency_seconds_count", ENGINE, REQUESTS),
    ("vllm:inter_token_latency_seconds_count", ENGINE, REQUESTS * (MAX_TOKENS - 1)),
)


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


async def test_two_front_ends_share_one_engine_and_one_metrics_view(two_front_ends: ServerProcess) -> None:
    url = two_front_ends.url
    before = _scrape(url)
    tokens = await asyncio.gather(*(_one(url, i) for i in range(REQUESTS)))
    assert tokens == [MAX_TOKENS] * REQUESTS

    scrapes = [_scrape(url) for _ in range(6)]
    # Every scrape, whichever process answered it, sees all requests of both processes.
    for text in scrapes:
        for name, labels, count in COUNTED:
            assert metric_value(text, name, labels) - metric_value(before, name, labels) == count, name
    per_server = _per_server(scrapes[-1])
    served = {i: n - _per_server(before)[i] for i, n in per_server.items()}
    assert all(count > 0 for count in served.values()), served
    all_routes = sum(
        float(line.rpartition(" ")[2])
        for line in scrapes[-1].splitlines()
        if line.startswith("mixtral_http_requests_total{")
    )
    assert sum(per_server.values()) == all_routes
    for pid in front_end_pids(two_front_ends, 2):  # each front end's own process series
        assert metric_value(scrapes[-1], "process_resident_memory_bytes", f'pid="{pid}"') > 0
    text = two_front_ends.log.read_text()
    assert "front end 0 of 2" in text and "front end 1 of 2" in text
    assert text.count("warm-up: ") == 1  # one engine, warmed once


# The stale-gauge case, made certain: front end L's request runs first in the engine's batch, so
# each step's scheduler report goes to L while it runs; L is stopped (SIGSTOP) and holds those
# reports back while front end P's longer request runs on alone and ends, P handling the engine's
# last report (0 running). L, resumed, then handles its older reports (1-2 running) last of all.
HELD_TOKENS = 200
LAST_TOKENS = 400  # more than L's request has left when P's starts: P's request ends last


@contextlib.asynccontextmanager
async def _client_per_front_end(server: ServerProcess) -> AsyncIterator[dict[int, httpx.AsyncClient]]:
    """A kept-alive connection to each front-end process, by pid (the kernel picks which accepts)."""
    pids = front_end_pids(server, 2)
    assert len(pids) == 2, pids
    clients: dict[int, httpx.AsyncClient] = {}
    try:
        for _ in range(50):
            http = httpx.AsyncClient(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=1))
            resp = await http.get("/health")
            port = resp.extensions["network_stream"].get_extra_info("client_addr")[1]
            owner = next(
                pid
                for pid in pids
                if any(c.raddr and c.raddr.port == port for c in psutil.Process(pid).net_connections("tcp"))
            )
            clients.setdefault(owner, http)
            if clients[owner] is not http:
                await http.aclose()
            if len(clients) == len(pids):
                break
        assert len(clients) == len(pids), "the kernel gave every connection to one front end"
        yield clients
    finally:
        for http in clients.values():
            await http.aclose()


async def _stream(http: httpx.AsyncClient, tokens: int, started: asyncio.Event) -> int:
    """Sets `started` once tokens flow; returns the completion tokens counted at the end."""
    body = chat("Tell me a story.", max_tokens=tokens, ignore_eos=True)
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    raw = ""
    async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        async for text in resp.aiter_text():
            raw += text
            if len(sse_events(raw)) >= 3:  # the role chunk and two tokens
                started.set()
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    completion_tokens: int = json.loads(events[-2])["usage"]["completion_tokens"]
    return completion_tokens


def _engine_load(text: str) -> float:
    """Ours and vLLM's running and waiting gauges (vLLM's stamped by the engine core as ours)."""
    ours = ("mixtral_num_requests_running", "mixtral_num_requests_waiting")
    vllms = ("vllm:num_requests_running", "vllm:num_requests_waiting")
    assert all(f"{name}{{{ENGINE}}} " in text for name in vllms)
    return sum(metric_value(text, name) for name in ours) + sum(metric_value(text, n, ENGINE) for n in vllms)


async def test_engine_gauges_read_0_on_an_idle_engine_though_a_front_end_handled_old_reports_last(
    two_front_ends: ServerProcess,
) -> None:
    async with _client_per_front_end(two_front_ends) as clients:
        (held_pid, held), (_, last) = clients.items()
        held_started, last_started = asyncio.Event(), asyncio.Event()
        held_stream = asyncio.create_task(_stream(held, HELD_TOKENS, held_started))
        await asyncio.wait_for(held_started.wait(), 60)
        last_stream = asyncio.create_task(_stream(last, LAST_TOKENS, last_started))
        await asyncio.wait_for(last_started.wait(), 60)
        os.kill(held_pid, signal.SIGSTOP)
        try:
            assert await asyncio.wait_for(last_stream, 60) == LAST_TOKENS
            assert not held_stream.done()
        finally:
            os.kill(held_pid, signal.SIGCONT)
        assert await asyncio.wait_for(held_stream, 60) == HELD_TOKENS  # L has handled all it held
    await asyncio.sleep(0.5)  # the engine is idle: no later report can come to correct the gauges
    loads = [_engine_load(_scrape(two_front_ends.url)) for _ in range(4)]
    assert loads == [0] * 4, f"engine gauges {loads} on an idle engine"
