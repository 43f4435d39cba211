"""SIGTERM drains: readiness turns 503, new requests get an OpenAI-shaped 503 (also on a connection
kept alive from before), the streams already open run to their end, and the process exits 0.

With one process, and with two front ends (the supervisor forwards the signal to both and stops
the engine core only after they drained)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server_process import server_process
from tests.helpers import chat, sse_events

logger = logging.getLogger(__name__)

STREAMS = 10
MAX_TOKENS = 700  # long enough that the streams are still open while the drain is checked


async def _stream(http: httpx.AsyncClient, started: asyncio.Event, counter: list[int]) -> list[str]:
    body = chat("Tell me a story.", max_tokens=MAX_TOKENS, ignore_eos=True, stream=True)
    events: list[str] = []
    async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            events.extend(sse_events(line))
            if len(events) == 2:  # the role chunk and one token: mid-stream
                counter[0] += 1
                if counter[0] == STREAMS:
                    started.set()
    return events


async def _poll_until(url: str, path: str, status: int, within: float) -> float:
    """Seconds until a new connection's GET `path` answers `status`."""
    start = time.monotonic()
    while True:
        async with httpx.AsyncClient(base_url=url, timeout=5) as fresh:
            if (await fresh.get(path)).status_code == status:
                return time.monotonic() - start
        assert time.monotonic() - start < within, f"{path} did not turn {status} in {within} s"
        await asyncio.sleep(0.02)


def _assert_refused(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "service_unavailable" and error["code"] == "shutting_down"


@pytest.mark.parametrize("front_ends", [1, 2], ids=["one-process", "two-front-ends"])
async def test_sigterm_drains_open_streams_refuses_new_work_and_exits_0(
    tmp_path: Path, front_ends: int
) -> None:
    flags = ("--max-model-len", "1024", "--api-server-count", str(front_ends), "--shutdown-timeout", "120")
    with server_process(*flags, log=tmp_path / "server.log") as server:
        url = server.url
        limits = httpx.Limits(max_connections=STREAMS + 1)
        async with (
            httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as streams_http,
            httpx.AsyncClient(base_url=url, timeout=30) as kept_alive,
        ):
            assert (await kept_alive.get("/ready")).status_code == 200
            started, counter = asyncio.Event(), [0]
            tasks = [asyncio.create_task(_stream(streams_http, started, counter)) for _ in range(STREAMS)]
            await asyncio.wait_for(started.wait(), 60)
            os.kill(server.proc.pid, signal.SIGTERM)
            signalled = time.monotonic()

            ready_503_after = await _poll_until(url, "/ready", 503, within=2)
            assert (await kept_alive.get("/health")).status_code == 200  # liveness: still alive
            _assert_refused(await kept_alive.post("/v1/chat/completions", json=chat("late", max_tokens=4)))
            async with httpx.AsyncClient(base_url=url, timeout=30) as fresh:
                _assert_refused(await fresh.post("/v1/chat/completions", json=chat("late", max_tokens=4)))
            still_open = sum(not t.done() for t in tasks)
            assert still_open == STREAMS, "the drain was checked after the streams ended: make them longer"

            results = await asyncio.gather(*tasks)
        complete = 0
        for events in results:
            assert events[-1] == "[DONE]"
            last = json.loads(events[-2])
            assert last["choices"][0]["finish_reason"] == "length"
            complete += 1
        code = await asyncio.to_thread(server.proc.wait, 60)
        exited_after = time.monotonic() - signalled
    logger.info(
        "front ends %d: /ready 503 after %.0f ms; %d/%d streams complete; exit %d after %.1f s",
        front_ends,
        ready_503_after * 1000,
        complete,
        STREAMS,
        code,
        exited_after,
    )
    assert complete == STREAMS
    assert code == 0
