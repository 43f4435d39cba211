"""Overload, a storm of disconnects and a drain, with one front end and with two: every request the
tests send is accounted for, and none is lost.

Each test writes one line to the terminal (sent / completed / refused / lost, and its timings) so
that CI's output carries the figures. A request counts as:
- completed: a 200 with the whole answer (every token asked for; a stream ends with `[DONE]`);
- refused: the refusal the situation calls for, OpenAI-shaped (a 429 with `Retry-After` under
  overload, a 503 `shutting_down` during a drain);
- errored: any other OpenAI-shaped 4xx, or a stream that ends with an error event and `[DONE]`;
- lost: anything else: no answer, a transport error, a cut body, a stream without `[DONE]`, a 5xx.

The limits are small so that the whole module stays cheap on a 2-core CI machine; one server per
layout serves the three tests, the drain last (it stops the server); the two-front-end one is shared
with test_frontends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.server_process import MAX_IN_FLIGHT, SHUTDOWN_TIMEOUT_S, ServerProcess, layout_server
from tests.helpers import chat, metric_value

logger = logging.getLogger(__name__)

PATH = "/v1/chat/completions"

TOKENS = 8  # per overload request: short, so that many requests finish (and free their place) in 10 s
OVERLOAD_CLIENTS = 4 * MAX_IN_FLIGHT  # 4x what admission lets in: most attempts must be refused
OVERLOAD_S = 10.0
RETRY_S = 0.1  # overload clients retry after this, not after Retry-After: the server stays overloaded
CLIENT_TIMEOUT_S = 60.0  # a request unanswered this long is lost
RSS_GROWTH_BOUND = 256 << 20  # bytes the server's processes may grow by in the overload: a generous bound
IDLE_WITHIN_S = 2.0  # after the load, the engine's running + waiting must be 0 this soon

STORM_ROUNDS = 3
STORM_STREAMS = MAX_IN_FLIGHT  # each round fills the server; one leaked place would refuse the next
STORM_TOKENS = 512  # far more than a stream gets before it is cut
FREED_WITHIN_S = 1.0
STILL_IDLE_AFTER_S = 0.5

DRAIN_STREAMS = 8
DRAIN_TOKENS = 160  # long enough to be still open while the late requests are refused
LATE_REQUESTS = 4

OVERLOAD_REFUSALS = {429: {"server_overloaded", "queue_full"}}
DRAIN_REFUSALS = {503: {"shutting_down"}}
NO_REFUSALS: dict[int, set[str]] = {}


@pytest.fixture(scope="module", params=[1, 2], ids=["one-front-end", "two-front-ends"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Two front ends: the server test_frontends shares (tests/e2e/conftest.py)."""
    if request.param == 2:
        shared: ServerProcess = request.getfixturevalue("two_front_end_server")
        assert shared.proc.poll() is None, "the shared 2-front-end server was stopped early"
        yield shared
        return
    with layout_server(1, tmp_path_factory.mktemp("load-faults-1") / "server.log") as started:
        yield started


@pytest.fixture
def report(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Writes one line past pytest's capture, so that it shows in CI's output, and logs it."""
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    layout = request.node.callspec.id

    def write(line: str) -> None:
        line = f"{request.node.originalname} [{layout}]: {line}"
        logger.info(line)
        if terminal is not None:
            with capsys.disabled():
                terminal.write_line(line)

    return write


def _body(text: str, tokens: int, stream: bool) -> dict[str, Any]:
    body = chat(text, max_tokens=tokens, ignore_eos=True)
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def _events(raw: str) -> list[str]:
    """SSE `data:` payloads. Lines end only at LF here: the tiny model's text may hold U+2028 and
    the like, which `str.splitlines` would split on."""
    return [line[len("data: ") :] for line in raw.split("\n") if line.startswith("data: ")]


def _judge_refusal(resp: httpx.Response, refusals: dict[int, set[str]]) -> str:
    try:
        error = resp.json()["error"]
        code = error["code"]
        assert {"message", "type", "param", "code"} <= set(error)
    except (ValueError, KeyError, TypeError, AssertionError):
        return f"lost: {resp.status_code} without an OpenAI error body"
    if code in refusals.get(resp.status_code, set()):
        retry_after = resp.headers.get("retry-after", "")
        if resp.status_code == 429 and not (retry_after.isdigit() and int(retry_after) >= 1):
            return "lost: 429 without Retry-After"
        return f"refused: {code}"
    if resp.status_code >= 500:
        return f"lost: {resp.status_code} {code}"
    return f"errored: {resp.status_code} {code}"


def _judge_answer(answer: dict[str, Any], tokens: int) -> str:
    finish = answer["choices"][0]["finish_reason"]
    used = answer["usage"]["completion_tokens"]
    return "completed" if (finish, used) == ("length", tokens) else f"lost: {finish}, {used} tokens"


def _judge_events(events: list[str], tokens: int) -> str:
    if not events or events[-1] != "[DONE]":
        return "lost: stream without [DONE]"
    try:
        chunks = [json.loads(event) for event in events[:-1]]
    except ValueError:
        return "lost: an event that is not JSON"
    errors = [chunk["error"].get("code") for chunk in chunks if "error" in chunk]
    if errors:
        return f"errored: event {errors[0]}"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    usage = chunks[-1].get("usage") if chunks else None
    if not usage or finishes[-1:] != ["length"] or usage["completion_tokens"] != tokens:
        return f"lost: stream ended {finishes[-1:]}, usage {usage}"
    return "completed"


async def _request(http: httpx.AsyncClient, body: dict[str, Any], refusals: dict[int, set[str]]) -> str:
    """One request, judged. Any transport error (no answer, a cut body, a timeout) is a loss."""
    try:
        async with http.stream("POST", PATH, json=body) as resp:
            raw = await resp.aread()
        if resp.status_code != 200:
            return _judge_refusal(resp, refusals)
        if body.get("stream"):
            return _judge_events(_events(raw.decode()), body["max_tokens"])
        return _judge_answer(json.loads(raw), body["max_tokens"])
    except httpx.HTTPError as exc:
        return f"lost: {type(exc).__name__} {exc}"
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"lost: malformed answer ({exc!r})"


def _summary(outcomes: Counter[str]) -> dict[str, int]:
    kinds = Counter(dict.fromkeys(("completed", "refused", "errored", "lost"), 0))
    for outcome, count in outcomes.items():
        kinds[outcome.partition(":")[0]] += count
    return {"sent": outcomes.total(), **kinds}


def _figures(outcomes: Counter[str]) -> str:
    counts = _summary(outcomes)
    details = ", ".join(f"{k} x{n}" for k, n in sorted(outcomes.items()) if ":" in k)
    return " ".join(f"{k} {n}" for k, n in counts.items()) + (f" ({details})" if details else "")


def _rss(pid: int) -> int:
    """Resident bytes of the server and every process under it (front ends, engine core, workers)."""
    root = psutil.Process(pid)
    total = 0
    for proc in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


async def _engine_load(http: httpx.AsyncClient) -> tuple[float, float]:
    """Requests running plus waiting in the engine, and client disconnects counted so far."""
    text = (await http.get("/metrics")).text
    load = metric_value(text, "mixtral_num_requests_running") + metric_value(
        text, "mixtral_num_requests_waiting"
    )
    return load, metric_value(text, "mixtral_client_disconnects_total", f'endpoint="{PATH}"')


async def _seconds_until_idle(http: httpx.AsyncClient, within: float, disconnects: float = 0.0) -> float:
    """From now until the engine holds no request (and `disconnects` have been counted)."""
    start = time.monotonic()
    while True:
        load, counted = await _engine_load(http)
        waited = time.monotonic() - start
        if load == 0 and counted >= disconnects:
            return waited
        assert waited < within, f"still {load} requests in the engine, {counted} disconnects after {waited} s"
        await asyncio.sleep(0.02)


async def _full_house(url: str) -> Counter[str]:
    """MAX_IN_FLIGHT requests at once, each on its own connection: all are admitted only if every
    place taken before was given back."""

    async def one(i: int) -> str:
        async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S) as http:
            return await _request(http, _body(f"after {i}", TOKENS, stream=i % 2 == 1), NO_REFUSALS)

    return Counter(await asyncio.gather(*(one(i) for i in range(MAX_IN_FLIGHT))))


async def _hammer(
    url: str, client: int, until: float, outcomes: Counter[str], took: dict[str, list[float]]
) -> None:
    """One client on its own kept-alive connection, sending until `until`; odd clients stream."""
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S) as http:
        sent = 0
        while time.monotonic() < until:
            body = _body(f"Client {client}, request {sent}: a story.", TOKENS, stream=client % 2 == 1)
            start = time.monotonic()
            outcome = await _request(http, body, OVERLOAD_REFUSALS)
            took[outcome.partition(":")[0]].append(time.monotonic() - start)
            outcomes[outcome] += 1
            sent += 1
            if outcome != "completed":
                await asyncio.sleep(RETRY_S)


def _percentiles(took: dict[str, list[float]]) -> str:
    """Time to the whole answer (or the refusal), p50/p99 in ms, by outcome."""
    parts = []
    for kind, seconds in sorted(took.items()):
        ranked = sorted(seconds)
        p50, p99 = ranked[len(ranked) // 2], ranked[min(len(ranked) - 1, int(len(ranked) * 0.99))]
        parts.append(f"{kind} p50/p99 {p50 * 1000:.0f}/{p99 * 1000:.0f} ms")
    return ", ".join(parts)


async def test_overload_loses_nothing_keeps_rss_flat_and_leaves_the_engine_idle(
    server: ServerProcess, report: Callable[[str], None]
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        rss_before = _rss(server.proc.pid)
        outcomes: Counter[str] = Counter()
        took: dict[str, list[float]] = defaultdict(list)
        start = time.monotonic()
        await asyncio.gather(
            *(_hammer(server.url, i, start + OVERLOAD_S, outcomes, took) for i in range(OVERLOAD_CLIENTS))
        )
        elapsed = time.monotonic() - start
        idle_after = await _seconds_until_idle(http, IDLE_WITHIN_S)
        rss_after = _rss(server.proc.pid)
        after = await _full_house(server.url)
    counts = _summary(outcomes)
    report(
        f"{OVERLOAD_CLIENTS} clients for {elapsed:.1f} s: {_figures(outcomes)}; {_percentiles(took)}; "
        f"engine idle {idle_after * 1000:.0f} ms after the last answer; "
        f"RSS {rss_before >> 20} -> {rss_after >> 20} MiB; then {after['completed']}/{MAX_IN_FLIGHT} admitted"
    )
    assert counts["lost"] == 0, outcomes
    # Both must happen, or the test did not overload the server (or nothing got through).
    assert counts["completed"] > 0 and counts["refused"] > 0, outcomes
    assert rss_after - rss_before < RSS_GROWTH_BOUND
    assert after == Counter({"completed": MAX_IN_FLIGHT}), after


async def _open_then_drop(url: str, started: asyncio.Queue[str], drop: asyncio.Event) -> str:
    """One client on its own connection: read until tokens flow, then leave without a word. Puts
    exactly one word in `started`: "cut" once mid-stream, else how it ended."""
    body = _body("Tell me a long story.", STORM_TOKENS, stream=True)
    outcome = "cut"
    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S) as http,
            http.stream("POST", PATH, json=body) as resp,
        ):
            if resp.status_code != 200:
                await resp.aread()
                outcome = _judge_refusal(resp, NO_REFUSALS)
                return outcome
            lines = resp.aiter_lines()  # held, not left with `break`: see test_disconnects
            seen = 0
            while seen < 3:  # the role chunk and two tokens: mid-generation
                seen += len(_events(await anext(lines)))
            started.put_nowait(outcome)
            await drop.wait()
        return outcome  # leaving the blocks closed the unread response's connection
    except (httpx.HTTPError, StopAsyncIteration) as exc:
        outcome = f"lost: before the cut, {type(exc).__name__} {exc}"
        return outcome
    finally:
        if outcome != "cut":
            started.put_nowait(outcome)


async def _storm_round(url: str, http: httpx.AsyncClient) -> tuple[Counter[str], float]:
    """STORM_STREAMS streams opened, all cut at once; seconds until the engine has let go of them."""
    _, disconnects_before = await _engine_load(http)
    started: asyncio.Queue[str] = asyncio.Queue()
    drop = asyncio.Event()
    clients = [asyncio.create_task(_open_then_drop(url, started, drop)) for _ in range(STORM_STREAMS)]
    cut = 0
    for _ in range(STORM_STREAMS):
        cut += await asyncio.wait_for(started.get(), CLIENT_TIMEOUT_S) == "cut"
    drop.set()
    outcomes = Counter(await asyncio.gather(*clients))
    freed_after = await _seconds_until_idle(http, 5 * FREED_WITHIN_S, disconnects_before + cut)
    # A front end that handles an older engine report late would turn the gauges up again (see
    # test_frontends for that case made certain): they must stay at 0.
    await asyncio.sleep(STILL_IDLE_AFTER_S)
    load, _ = await _engine_load(http)
    assert load == 0, f"engine gauges back at {load} {STILL_IDLE_AFTER_S} s after they read 0"
    return outcomes, freed_after


async def test_disconnect_storm_frees_the_engine_each_round_and_the_server_still_answers(
    server: ServerProcess, report: Callable[[str], None]
) -> None:
    outcomes: Counter[str] = Counter()
    freed: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for _ in range(STORM_ROUNDS):
            cut, freed_after = await _storm_round(server.url, http)
            outcomes += cut
            freed.append(freed_after)
        after = await _full_house(server.url)
    outcomes += after
    counts = _summary(outcomes)
    report(
        f"{STORM_ROUNDS} rounds of {STORM_STREAMS} streams cut mid-stream, then {MAX_IN_FLIGHT} requests: "
        f"{_figures(outcomes)}; engine at 0 after " + ", ".join(f"{s * 1000:.0f}" for s in freed) + " ms"
    )
    assert counts["lost"] == 0, outcomes
    assert outcomes["cut"] == STORM_ROUNDS * STORM_STREAMS, outcomes
    assert after == Counter({"completed": MAX_IN_FLIGHT}), after  # every place given back
    assert max(freed) < FREED_WITHIN_S, freed


async def _until_ready_refuses(url: str, within: float) -> float:
    start = time.monotonic()
    while True:
        async with httpx.AsyncClient(base_url=url, timeout=5) as fresh:
            if (await fresh.get("/ready")).status_code == 503:
                return time.monotonic() - start
        assert time.monotonic() - start < within, f"/ready not 503 within {within} s"
        await asyncio.sleep(0.02)


async def _stream_marking_start(url: str, started: asyncio.Queue[None]) -> str:
    """A drain stream: signals once it is mid-generation, then reads to its end and is judged."""
    body = _body("Tell me a story.", DRAIN_TOKENS, stream=True)
    raw: list[str] = []
    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S) as http,
            http.stream("POST", PATH, json=body) as resp,
        ):
            if resp.status_code != 200:
                await resp.aread()
                started.put_nowait(None)
                return _judge_refusal(resp, NO_REFUSALS)
            signalled = False
            async for text in resp.aiter_text():
                raw.append(text)
                if not signalled and len(_events("".join(raw))) >= 2:  # the role chunk and a token
                    started.put_nowait(None)
                    signalled = True
    except httpx.HTTPError as exc:
        return f"lost: {type(exc).__name__} {exc}"
    return _judge_events(_events("".join(raw)), DRAIN_TOKENS)


async def test_drain_completes_open_streams_refuses_new_requests_and_exits_0(
    server: ServerProcess, report: Callable[[str], None]
) -> None:
    started: asyncio.Queue[None] = asyncio.Queue()
    streams = [asyncio.create_task(_stream_marking_start(server.url, started)) for _ in range(DRAIN_STREAMS)]
    for _ in range(DRAIN_STREAMS):
        await asyncio.wait_for(started.get(), CLIENT_TIMEOUT_S)
    # A connection kept alive from before the signal: it must be refused too, not served.
    kept_alive = httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT_S)
    assert (await kept_alive.get("/ready")).status_code == 200
    os.kill(server.proc.pid, signal.SIGTERM)
    signalled = time.monotonic()
    ready_503_after = await _until_ready_refuses(server.url, within=2)
    try:
        assert (await kept_alive.get("/health")).status_code == 200  # liveness: still alive
        kept = await _request(kept_alive, _body("kept alive", TOKENS, stream=False), DRAIN_REFUSALS)
    finally:
        await kept_alive.aclose()
    assert kept == "refused: shutting_down", kept

    async def late(i: int) -> str:
        async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as fresh:
            return await _request(fresh, _body(f"late {i}", TOKENS, stream=i % 2 == 1), DRAIN_REFUSALS)

    late_outcomes = Counter(await asyncio.gather(*(late(i) for i in range(LATE_REQUESTS))))
    open_at_refusals = sum(not stream.done() for stream in streams)
    outcomes = late_outcomes + Counter(await asyncio.gather(*streams))
    streams_done_after = time.monotonic() - signalled
    code = await asyncio.to_thread(server.proc.wait, SHUTDOWN_TIMEOUT_S + 10)
    exited_after = time.monotonic() - signalled
    counts = _summary(outcomes)
    report(
        f"SIGTERM with {DRAIN_STREAMS} streams open, {LATE_REQUESTS} requests during the drain: "
        f"{_figures(outcomes)}; /ready 503 after {ready_503_after * 1000:.0f} ms; "
        f"streams done after {streams_done_after:.1f} s; "
        f"exit {code} after {exited_after:.1f} s"
    )
    assert open_at_refusals == DRAIN_STREAMS, "the streams ended before the drain was checked: lengthen them"
    assert counts["lost"] == 0, outcomes
    assert counts["completed"] == DRAIN_STREAMS and counts["refused"] == LATE_REQUESTS, outcomes
    assert code == 0
    assert exited_after < SHUTDOWN_TIMEOUT_S + 2  # the drain holds at most the timeout; then 2 s to exit
