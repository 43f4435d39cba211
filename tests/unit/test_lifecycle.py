"""The drain's rules without an engine: when the process may end, what a request meets while
draining, and what the first and second signal do."""

from __future__ import annotations

import asyncio
import signal

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from server.http.middleware.drain import LifecycleMiddleware
from server.lifecycle import STOP_GRACE_S, Lifecycle, Phase
from server.process.serve import DrainingServer


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG001
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _client(lifecycle: Lifecycle) -> httpx.AsyncClient:
    app = LifecycleMiddleware(_ok, lifecycle)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_a_drain_ends_when_the_last_request_has_or_at_the_timeout() -> None:
    lifecycle = Lifecycle(shutdown_timeout=60)
    lifecycle.serving()
    assert not lifecycle.finished()
    lifecycle.in_flight = 2
    lifecycle.begin_drain()
    assert lifecycle.phase is Phase.DRAINING and not lifecycle.ready
    assert not lifecycle.finished()
    lifecycle.in_flight = 0
    assert lifecycle.finished() and lifecycle.exit_code == 0

    out_of_time = Lifecycle(shutdown_timeout=0)
    out_of_time.in_flight = 1
    out_of_time.begin_drain()
    assert not out_of_time.finished()  # out of time: the open request is told, and gets a grace


def test_a_dead_engine_means_exit_status_1() -> None:
    lifecycle = Lifecycle(shutdown_timeout=60)
    lifecycle.serving()
    lifecycle.engine_died()
    assert lifecycle.exit_code == 1
    assert not lifecycle.finished()  # a second of 503s first


async def test_while_draining_work_gets_an_openai_503_and_probes_still_answer() -> None:
    lifecycle = Lifecycle(shutdown_timeout=60)
    lifecycle.serving()
    async with _client(lifecycle) as http:
        assert (await http.post("/v1/chat/completions")).status_code == 200
        lifecycle.begin_drain()
        resp = await http.post("/v1/chat/completions")
        assert resp.status_code == 503
        assert resp.headers["connection"] == "close"
        assert resp.json()["error"]["code"] == "shutting_down"
        assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
        assert (await http.get("/health")).status_code == 200
    assert lifecycle.in_flight == 0


def test_the_first_signal_drains_and_the_second_stops() -> None:
    lifecycle = Lifecycle(shutdown_timeout=60)
    lifecycle.serving()
    server = DrainingServer(uvicorn.Config(_ok), lifecycle)
    server.handle_exit(signal.SIGTERM, None)
    assert lifecycle.phase is Phase.DRAINING and not server.should_exit
    # Not left for uvicorn to re-raise after its shutdown: that would end a clean drain with -15.
    assert server._captured_signals == []
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit


async def test_at_the_drain_deadline_open_requests_are_told_to_stop_and_get_a_grace_to_end() -> None:
    lifecycle = Lifecycle(shutdown_timeout=0.05)
    lifecycle.serving()
    lifecycle.in_flight = 1
    stopping = asyncio.create_task(lifecycle.stopping())
    lifecycle.begin_drain()
    await asyncio.sleep(0.01)
    assert not lifecycle.finished() and not stopping.done()  # before the deadline: they may finish
    await asyncio.sleep(0.06)
    assert not lifecycle.finished()  # the deadline passed: told to stop, and waited for
    await asyncio.wait_for(stopping, 1)
    lifecycle.in_flight = 0  # they wrote their shutting-down event and ended
    assert lifecycle.finished()

    stuck = Lifecycle(shutdown_timeout=0)
    stuck.in_flight = 1
    stuck.begin_drain()
    assert not stuck.finished()
    await asyncio.sleep(STOP_GRACE_S + 0.05)
    assert stuck.finished()  # a request that does not end is not waited for past the grace


async def test_with_a_shutdown_delay_the_first_signal_only_turns_unready_then_the_drain_starts() -> None:
    lifecycle = Lifecycle(shutdown_timeout=60, shutdown_delay=0.2)
    lifecycle.serving()
    server = DrainingServer(uvicorn.Config(_ok), lifecycle)
    async with _client(lifecycle) as http:
        server.handle_exit(signal.SIGTERM, None)
        # Unready for the balancer, but work is served as before: no refusal yet.
        assert not lifecycle.ready and lifecycle.leaving and lifecycle.phase is Phase.SERVING
        assert (await http.post("/v1/chat/completions")).status_code == 200
        assert not lifecycle.finished() and not server.should_exit
        lifecycle.in_flight = 1
        await asyncio.sleep(0.25)
        assert not lifecycle.finished()  # the delay is over: the drain starts, and waits for it
        assert lifecycle.phase is Phase.DRAINING
        lifecycle.in_flight = 0
        resp = await http.post("/v1/chat/completions")
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "shutting_down"
    assert lifecycle.finished() and lifecycle.exit_code == 0


def test_a_second_signal_skips_the_shutdown_delay_and_a_third_stops() -> None:
    lifecycle = Lifecycle(shutdown_timeout=60, shutdown_delay=3600)
    lifecycle.serving()
    server = DrainingServer(uvicorn.Config(_ok), lifecycle)
    server.handle_exit(signal.SIGTERM, None)
    assert lifecycle.phase is Phase.SERVING and lifecycle.leaving
    server.handle_exit(signal.SIGTERM, None)
    assert lifecycle.phase is Phase.DRAINING and not server.should_exit
    assert lifecycle.finished()  # nothing open: done at once, not an hour later
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit


def test_a_signal_during_the_start_up_stops_it_without_waiting_out_the_delay() -> None:
    lifecycle = Lifecycle(shutdown_timeout=60, shutdown_delay=3600)
    lifecycle.begin_drain()
    assert lifecycle.stopped_starting and lifecycle.phase is Phase.DRAINING
