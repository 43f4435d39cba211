"""SIGTERM with `--shutdown-timeout` shorter than the open work: at the deadline every open stream
ends with a `shutting_down` error event and `[DONE]` in a properly ended chunked body, a request
without `stream` gets that error as its 503, and the process exits 0 within the timeout + 2 s.

Before, uvicorn cancelled the streams after the deadline, the admission store was closed under them,
and they ended with "Internal error while streaming." in a body cut mid-chunk (curl exit 18)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server_process import server_process
from tests.helpers import chat, sse_events

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 3.0  # short, so that the test is cheap; the work below takes longer
EXIT_MARGIN_S = 2.0  # what the process may take after the deadline: streams end, engine stops
STREAMS = 4
# Far more tokens than the tiny model makes in SHUTDOWN_TIMEOUT_S with STREAMS + 2 sequences running
# (the test checks that every stream was still open at the deadline).
MAX_TOKENS = 1900
SHUTTING_DOWN = {
    "message": "The server is shutting down.",
    "type": "service_unavailable",
    "param": None,
    "code": "shutting_down",
}


async def _stream(http: httpx.AsyncClient, started: asyncio.Event, counter: list[int]) -> list[str]:
    """The stream's events; httpx raises RemoteProtocolError if the chunked body is cut short."""
    body = chat("Tell me a story.", max_tokens=MAX_TOKENS, ignore_eos=True, stream=True)
    events: list[str] = []
    async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            events.extend(sse_events(line))
            if len(events) == 2:
                counter[0] += 1
                if counter[0] == STREAMS:
                    started.set()
    return events


async def _curl_stream(url: str) -> tuple[int, str]:
    """curl's exit status (18: the body ended inside a chunk) and what it received."""
    body = json.dumps(chat("Tell me a story.", max_tokens=MAX_TOKENS, ignore_eos=True, stream=True))
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sN", "-H", "Content-Type: application/json", "-d", body, f"{url}/v1/chat/completions",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@pytest.mark.parametrize("front_ends", [1, 2], ids=["one-process", "two-front-ends"])
async def test_shutdown_timeout_ends_open_requests_cleanly_and_exits_in_time(
    tmp_path: Path, front_ends: int
) -> None:
    flags = (
        "--max-model-len", "2048", "--api-server-count", str(front_ends),
        "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_S),
    )  # fmt: skip
    log = tmp_path / "server.log"
    with server_process(*flags, log=log) as server:
        url = server.url
        async with httpx.AsyncClient(
            base_url=url, timeout=120, limits=httpx.Limits(max_connections=8)
        ) as http:
            started, counter = asyncio.Event(), [0]
            streams = [asyncio.create_task(_stream(http, started, counter)) for _ in range(STREAMS)]
            curl = asyncio.create_task(_curl_stream(url)) if shutil.which("curl") else None
            whole = asyncio.create_task(
                http.post("/v1/chat/completions", json=chat("Go on", max_tokens=MAX_TOKENS, ignore_eos=True))
            )
            await asyncio.wait_for(started.wait(), 60)
            await asyncio.sleep(0.3)  # the curl stream and the non-streamed request are admitted too
            os.kill(server.proc.pid, signal.SIGTERM)
            signalled = time.monotonic()
            results = await asyncio.gather(*streams)
            ended_after = time.monotonic() - signalled
            unary = await whole
            curl_result = await curl if curl is not None else None
        code = await asyncio.to_thread(server.proc.wait, 30)
        exited_after = time.monotonic() - signalled
    text = log.read_text()
    logger.info(
        "front ends %d: streams ended %.2f s after SIGTERM (timeout %.0f s); exit %d after %.2f s",
        front_ends, ended_after, SHUTDOWN_TIMEOUT_S, code, exited_after,
    )  # fmt: skip
    for events in results:
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2]) == {"error": SHUTTING_DOWN}
        tokens = [e for e in events[:-2] if "choices" in json.loads(e)]
        assert 1 < len(tokens) < MAX_TOKENS, "a stream ended before the deadline: make them longer"
    assert unary.status_code == 503 and unary.json() == {"error": SHUTTING_DOWN}
    if curl_result is not None:
        curl_code, curl_body = curl_result
        assert curl_code == 0, f"curl exit {curl_code}: the chunked body was not ended"
        events = sse_events(curl_body)
        assert events[-1] == "[DONE]" and json.loads(events[-2]) == {"error": SHUTTING_DOWN}
    assert SHUTDOWN_TIMEOUT_S - 0.5 < ended_after < SHUTDOWN_TIMEOUT_S + 1.5
    assert code == 0
    assert exited_after < SHUTDOWN_TIMEOUT_S + EXIT_MARGIN_S
    assert "Internal error" not in text and "Traceback" not in text
