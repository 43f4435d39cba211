"""A fleet run for real on this machine: Debian's redis-server, two replicas of our server (each its
own engine on the tiny model, `--shared-state` to that Redis, per-key limits from the keys file,
`--shutdown-delay`), and Debian's HAProxy with the shipped deploy/haproxy/haproxy.cfg in front.
Everything goes through the balancer, as clients would; the replicas' access logs and metrics say
where it went. The destructive tests come last, in this order: Redis killed, a replica drained
(then started again), a replica killed. Each prints one `FLEET` line of figures.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest

from tests.conftest import cache_dir
from tests.helpers import metric_value
from tests.multihost.fleet import (
    CHAT,
    CONCURRENT,
    RPM,
    SHUTDOWN_DELAY_S,
    Balancer,
    Outcome,
    RedisServer,
    Replica,
    auth,
    load,
    request,
    start_all,
    why_not,
    write_keys,
)

pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))

UP = {"replica1": "UP", "replica2": "UP"}
Report = Callable[..., None]


@dataclass
class Fleet:
    redis: RedisServer
    replicas: list[Replica]
    balancer: Balancer

    @property
    def url(self) -> str:
        return self.balancer.url


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("fleet")
    redis = RedisServer(directory)
    flags = (
        "--max-model-len", "1024",  # the other tiers' length: vLLM's compile cache is reused
        "--cache-dir", str(cache_dir()),
        "--api-keys-file", str(write_keys(directory)),
        "--admin-keys", "admin",
        "--shared-state", redis.url,
        "--shutdown-delay", str(SHUTDOWN_DELAY_S),
        "--shutdown-timeout", "30",
    )  # fmt: skip
    replicas = [Replica(f"replica{i + 1}", core=i, flags=flags, directory=directory) for i in range(2)]
    balancer: Balancer | None = None
    try:
        start_all(replicas)
        balancer = Balancer([r.address for r in replicas], directory)
        balancer.wait_for(UP)
        yield Fleet(redis, replicas, balancer)
    finally:
        if balancer is not None:
            balancer.close()
        for replica in replicas:  # a second signal each: no shutdown delay at the end of the tests
            if replica.server is not None and replica.server.proc.poll() is None:
                replica.server.proc.send_signal(signal.SIGINT)
        for replica in replicas:
            replica.stop()
        redis.kill()


@pytest.fixture
def report(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Report:
    """One `FLEET` line of figures per scenario, past pytest's capture, so that CI's log has it."""
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")

    def write(scenario: str, **values: object) -> None:
        line = f"FLEET {scenario}: " + " ".join(f"{k}={v}" for k, v in values.items())
        if terminal is not None:
            with capsys.disabled():
                terminal.write_line(line)

    return write


async def _burst(url: str, key: str, count: int) -> list[Outcome]:
    """`count` requests at once, each on its own connection."""

    async def one() -> Outcome:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            return await request(http, key, stream=False, max_tokens=1)

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _admitted_exactly(outcomes: list[Outcome], admitted: int, code: str) -> None:
    assert sorted(o.status or 0 for o in outcomes) == [200] * admitted + [429] * (len(outcomes) - admitted)
    for refused in (o for o in outcomes if o.status == 429):
        assert refused.code == code and refused.retry_after is not None and int(refused.retry_after) >= 1


class HeldStreams:
    """`count` streams through the balancer, each held open after its first event."""

    def __init__(self, url: str, count: int) -> None:
        self._url, self._count = url, count
        self._clients: list[httpx.AsyncClient] = []
        self._responses: list[httpx.Response] = []
        self._lines: list[AsyncIterator[str]] = []  # kept: a dropped line iterator closes its stream

    async def __aenter__(self) -> list[int]:
        body = {"messages": [{"role": "user", "content": "Hold"}], "max_tokens": 900, "ignore_eos": True}
        for _ in range(self._count):  # one after another: leastconn puts them on different replicas
            http = httpx.AsyncClient(base_url=self._url, timeout=60)
            self._clients.append(http)
            resp = await http.send(http.build_request("POST", CHAT, json=body | {"stream": True},
                                                      headers=auth("conc")), stream=True)  # fmt: skip
            self._responses.append(resp)
            lines = resp.aiter_lines()
            self._lines.append(lines)
            while resp.status_code == 200 and not (await anext(lines)).startswith("data: "):
                pass
        return [r.status_code for r in self._responses]

    async def __aexit__(self, *exc: object) -> None:
        for resp in self._responses:
            await resp.aclose()
        for http in self._clients:
            await http.aclose()


async def test_a_key_limited_to_n_requests_a_minute_gets_n_through_the_fleet_not_2n(
    fleet: Fleet, report: Report
) -> None:
    outcomes = await _burst(fleet.url, "rpm", 3 * RPM)
    per_replica = [r.served("rpm") for r in fleet.replicas]
    report("rate-limit", rpm=RPM, sent=len(outcomes), admitted=sum(o.status == 200 for o in outcomes),
            refused_429=sum(o.status == 429 for o in outcomes), per_replica=per_replica)  # fmt: skip
    _admitted_exactly(outcomes, RPM, "requests_per_minute_exceeded")
    assert all(n > 0 for n in per_replica)  # both replicas decided, against one count


async def test_a_keys_concurrency_limit_holds_across_replicas(fleet: Fleet, report: Report) -> None:
    async with HeldStreams(fleet.url, CONCURRENT) as opened:
        assert opened == [200] * CONCURRENT
        while_open = await _burst(fleet.url, "conc", 4)
    await asyncio.sleep(0.5)  # the closed streams give their seats back
    after = await _burst(fleet.url, "conc", 1)
    # The held streams' lines (the request after them asked for one token).
    holders = [sum(1 for r in rep.access_lines() if r.get("api_key") == "conc" and r["status"] == 200
                   and r["completion_tokens"] != 1) for rep in fleet.replicas]  # fmt: skip
    report("concurrency", limit=CONCURRENT, open_streams_per_replica=holders,
            refused_while_open=sum(o.status == 429 for o in while_open),
            after_close=after[0].status)  # fmt: skip
    _admitted_exactly(while_open, 0, "concurrency_limit_exceeded")
    assert after[0].status == 200
    assert holders == [1, 1]  # one held stream on each replica: the limit held across them


async def test_usage_sums_across_replicas(fleet: Fleet, report: Report) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, timeout=60) as http:
        sent = [await request(http, "usage", stream=i % 2 == 0, max_tokens=3 + i, text="Count " * (i + 1))
                for i in range(8)]  # fmt: skip
    assert all(o.ok for o in sent)
    counted = (len(sent), sum(o.prompt_tokens for o in sent), sum(o.completion_tokens for o in sent))
    deadline = time.monotonic() + 5
    async with httpx.AsyncClient(base_url=fleet.url, timeout=10, headers=auth("admin")) as http:
        while True:  # a stream's usage is added as its end reaches the store, a moment after [DONE]
            total = (await http.get("/v1/admin/usage", params={"key": "usage", "days": 2})).json()["total"]
            stored = (total["requests"], total["prompt_tokens"], total["completion_tokens"])
            if stored == counted or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    per_replica = [r.served("usage") for r in fleet.replicas]
    report("usage", clients_counted=counted, admin_usage=stored, per_replica=per_replica)
    assert stored == counted
    assert all(n > 0 for n in per_replica)


async def _shared_state(replica: Replica) -> tuple[float, float]:
    assert replica.server is not None
    async with httpx.AsyncClient(base_url=replica.server.url, timeout=5) as http:
        text = (await http.get("/metrics")).text
    return metric_value(text, "mixtral_shared_state_errors_total"), metric_value(
        text, "mixtral_shared_state_up"
    )


async def test_redis_killed_mid_load_fails_open_then_limits_hold_again(fleet: Fleet, report: Report) -> None:
    async def outage() -> tuple[float, float]:
        await asyncio.sleep(1.5)
        killed = time.monotonic()
        fleet.redis.kill()
        await asyncio.sleep(2.0)
        fleet.redis.start()  # empty: no persistence, no scripts loaded
        return killed, time.monotonic()

    outcomes, (killed, back) = await asyncio.gather(load(fleet.url, "load", 6.0, workers=4), outage())
    during = [o for o in outcomes if killed <= o.start < back]
    states = [await _shared_state(r) for r in fleet.replicas]
    logged = [_failed_lines(r) for r in fleet.replicas]
    again = await _burst(fleet.url, "rpm", 3 * RPM)  # the restarted Redis holds a fresh minute
    report("redis-down", requests=len(outcomes), during_outage=len(during),
            answered_ok=sum(o.ok for o in outcomes), status_5xx=sum((o.status or 0) >= 500 for o in outcomes),
            no_answer=sum(o.status is None for o in outcomes), errors_metric=[s[0] for s in states],
            up_after=[s[1] for s in states], failed_log_lines=logged,
            rpm_after_restart=f"{sum(o.status == 200 for o in again)}/{len(again)}")  # fmt: skip
    assert during and all(o.ok for o in outcomes)  # fail-open: every request answered in full
    assert all(errors > 0 and up == 1 for errors, up in states)
    assert all(n == 1 for n in logged)  # one line when it failed, not one per request
    _admitted_exactly(again, RPM, "requests_per_minute_exceeded")


def _failed_lines(replica: Replica) -> int:
    return sum(
        "shared state store" in line and "failed" in line for line in replica.log.read_text().splitlines()
    )


def _utc(record: dict[str, object]) -> float:
    return datetime.fromisoformat(str(record["time"])).timestamp()


async def _watch_down(balancer: Balancer, name: str, since: float) -> float:
    """Seconds from `since` until the balancer no longer counts `name` as UP."""
    while True:
        state = (await asyncio.to_thread(balancer.states))[name]
        if not state.startswith("UP"):
            return time.monotonic() - since
        await asyncio.sleep(0.05)


async def test_sigterm_with_the_delay_the_balancer_stops_sending_before_the_replica_refuses(
    fleet: Fleet, report: Report
) -> None:
    draining = fleet.replicas[0]
    assert draining.server is not None
    long_streams: list[Outcome] = []

    async def long_stream() -> None:
        async with httpx.AsyncClient(base_url=fleet.url, timeout=60) as http:
            long_streams.append(await request(http, "load", stream=True, max_tokens=600))

    async def sigterm() -> tuple[float, float, float]:
        await asyncio.sleep(1.5)
        signalled, wall = time.monotonic(), time.time()
        draining.server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        return signalled, wall, await _watch_down(fleet.balancer, draining.name, signalled)

    outcomes, (signalled, wall, down_after), *_ = await asyncio.gather(
        load(fleet.url, "load", SHUTDOWN_DELAY_S + 5, workers=4), sigterm(), long_stream(), long_stream()
    )
    status = await asyncio.to_thread(draining.server.proc.wait, 60)
    exited_after = time.monotonic() - signalled
    lines = draining.access_lines()
    after_signal = [r for r in lines if _utc(r) >= wall and r.get("path") == CHAT]
    report("drain", requests=len(outcomes), failed=sum(not o.ok for o in outcomes),
            balancer_down_after_s=round(down_after, 2), delay_s=SHUTDOWN_DELAY_S,
            served_by_it_after_sigterm=len(after_signal),
            its_503s=sum(r["status"] == 503 for r in lines if r["path"] == CHAT),
            long_streams_ok=sum(o.ok for o in long_streams), exit_status=status,
            exited_after_s=round(exited_after, 1))  # fmt: skip
    assert all(o.ok for o in outcomes) and all(o.ok for o in long_streams)
    assert down_after < SHUTDOWN_DELAY_S  # out of the balancer before the drain refuses anything
    assert not [r for r in lines if r["status"] == 503 and r["path"] == CHAT]  # /ready's 503s are the point
    assert status == 0
    await asyncio.to_thread(draining.stop)
    await asyncio.to_thread(draining.start)  # on its port again, for the last test
    back_in = await asyncio.to_thread(fleet.balancer.wait_for, UP, 60)
    report("restart", balancer_up_after_healthy_s=round(back_in, 2))


async def test_a_replica_killed_under_load_only_its_in_flight_requests_fail(
    fleet: Fleet, report: Report
) -> None:
    victim = fleet.replicas[1]
    assert victim.server is not None

    async def kill() -> tuple[float, float, float]:
        await asyncio.sleep(2.0)
        killed, wall = time.monotonic(), time.time()
        victim.server.proc.kill()  # type: ignore[union-attr]
        return killed, wall, await _watch_down(fleet.balancer, victim.name, killed)

    replayed_before = fleet.balancer.replayed()
    outcomes, (killed, wall, down_after) = await asyncio.gather(
        load(fleet.url, "load", 6.0, workers=4, max_tokens=48), kill()
    )
    await asyncio.sleep(0.2)  # HAProxy logs a request as it ends
    in_flight = [o for o in outcomes if o.start < killed < o.end]
    failed = [o for o in outcomes if not o.ok]
    later = [o for o in outcomes if o.start >= killed]
    # The other replica's requests open at the kill: its access line ends after it, began before.
    survived = [r for r in fleet.replicas[0].access_lines()
                if r.get("path") == CHAT and _utc(r) - r["duration_ms"] / 1000 < wall <= _utc(r)]  # fmt: skip
    report("replica-killed", requests=len(outcomes), in_flight_at_kill=len(in_flight),
            failed=len(failed), failed_streams=sum(o.stream for o in failed),
            on_the_other_replica=len(survived), later=len(later), later_ok=sum(o.ok for o in later),
            balancer_down_after_s=round(down_after, 2), replayed=fleet.balancer.replayed() - replayed_before,
            failures=[(o.status, o.stream, round(o.start - killed, 2)) for o in failed][:8])  # fmt: skip
    assert all(o in in_flight for o in failed)  # only requests open at the kill
    assert len(failed) <= len(in_flight) - len(survived)  # and only those on the killed replica
    assert later and all(o.ok for o in later)
