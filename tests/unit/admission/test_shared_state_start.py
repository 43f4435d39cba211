"""The --shared-state store asked once at start-up, against a real redis-server and a closed port:
URLs that cannot work stop the start with a message that says why (and never shows the password);
a store that does not answer is marked down, logged once with the failure mode, and the start goes
on, in both failure modes; the store found later counts again without a restart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

import server.app
from server.admission.key_limits import KeyPolicy
from server.admission.redis_keys import PROBE_INTERVAL_S, RedisKeyLimits
from server.admission.redis_start import START_CHECK_TIMEOUT_S, SharedStateUnusable, check_at_start
from server.admission.stores import KeyStore, open_key_store
from server.app import create_app
from server.config import Settings
from server.errors import EngineUnavailableError
from server.observability.metrics import ServerMetrics
from tests.redis_server import RedisServer

PASSWORD = "s3cret-word"
POLICY = KeyPolicy(requests_per_minute=1)


def _settings(tmp_path: Path, url: str, failure: str = "open") -> Settings:
    return Settings(shared_state=url, shared_state_failure=failure, cache_dir=tmp_path)  # type: ignore[arg-type]


def _value(metrics: ServerMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("locked"), "--requirepass", PASSWORD)
    try:
        yield server
    finally:
        server.kill()


async def _open(tmp_path: Path, url: str, failure: str = "open") -> tuple[KeyStore, ServerMetrics]:
    metrics = ServerMetrics()
    return await open_key_store(_settings(tmp_path, url, failure), metrics), metrics


async def test_a_store_that_answers_is_used_and_nothing_is_logged(
    tmp_path: Path, locked: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store, metrics = await _open(tmp_path, f"redis://:{PASSWORD}@127.0.0.1:{locked.port}/3")
    try:
        assert isinstance(store.shared, RedisKeyLimits) and store.usage is None
        assert _value(metrics, "mixtral_shared_state_up") == 1.0
        assert _value(metrics, "mixtral_shared_state_errors_total") == 0.0
        assert (await store.shared.take("ok", POLICY, 1, time.time(), lambda a, n: 1.0)).counted
        assert not caplog.records
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("userinfo", "db", "why"),
    [
        (f":{PASSWORD}x@", "0", "refuses these credentials"),  # wrong password
        ("", "0", "refuses these credentials"),  # none, where the store wants one
        (f"ops:{PASSWORD}@", "0", "refuses these credentials"),  # a user the store does not have
        (f":{PASSWORD}@", "99", "DB index is out of range"),  # 16 databases by default
        (f":{PASSWORD}@", "cache", "must be a database number"),  # redis-py would use 0
    ],
    ids=["wrong-password", "no-password", "unknown-user", "unknown-db", "db-not-a-number"],
)
async def test_a_url_that_cannot_work_stops_the_start_and_says_why(
    tmp_path: Path, locked: RedisServer, userinfo: str, db: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="server.admission")
    started = time.monotonic()
    with pytest.raises(SharedStateUnusable) as failed:
        await _open(tmp_path, f"redis://{userinfo}127.0.0.1:{locked.port}/{db}")
    assert why in str(failed.value)
    assert f"127.0.0.1:{locked.port}/{db}" in str(failed.value)
    assert PASSWORD not in str(failed.value)
    assert time.monotonic() - started < 1.0
    # One plain line for the operator, besides the traceback of the failed start.
    assert [r.getMessage() for r in caplog.records] == [f"not starting: {failed.value}"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis://127.0.0.1:port/0", "Port could not be cast"),
        ("redis://127.0.0.1:70000/0", "out of range"),
        ("redis://127.0.0.1:{port}/0?pool_size=4", "pool_size"),  # an option redis-py does not know
    ],
)
async def test_a_malformed_url_stops_the_start_before_any_connection(
    tmp_path: Path, locked: RedisServer, url: str, why: str
) -> None:
    with pytest.raises(SharedStateUnusable, match=why):
        await _open(tmp_path, url.format(port=locked.port))


def _closed_port(tmp_path: Path) -> RedisServer:
    """A redis-server killed at once: its port is free (nothing listens) until it starts again."""
    redis = RedisServer(tmp_path)
    redis.kill()
    return redis


@pytest.mark.parametrize(
    ("failure", "outcome"), [("open", "let in uncounted"), ("closed", "refused with 503")]
)
async def test_an_unreachable_store_is_logged_once_and_the_start_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: str, outcome: str
) -> None:
    redis = _closed_port(tmp_path)
    caplog.set_level(logging.INFO, logger="server.admission")
    started = time.monotonic()
    store, metrics = await _open(tmp_path, redis.url, failure)
    try:
        assert time.monotonic() - started < 1.0  # refused at once: no wait for the timeout
        assert _value(metrics, "mixtral_shared_state_up") == 0.0
        assert _value(metrics, "mixtral_shared_state_errors_total") == 1.0
        [line] = caplog.records
        assert line.levelno == logging.ERROR
        assert redis.url in line.getMessage() and "ConnectionError" in line.getMessage()
        assert outcome in line.getMessage()
        assert store.shared is not None
        take = store.shared.take("k", POLICY, 1, time.time(), lambda a, n: 1.0)
        if failure == "closed":
            with pytest.raises(EngineUnavailableError):
                await take
        else:
            assert not (await take).counted
    finally:
        await store.close()


async def test_the_store_found_after_the_start_counts_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis = _closed_port(tmp_path)
    caplog.set_level(logging.WARNING, logger="server.admission")
    store, metrics = await _open(tmp_path, redis.url)
    assert store.shared is not None
    try:
        redis.start()  # the same port
        await asyncio.sleep(PROBE_INTERVAL_S + 0.1)  # until then, calls go straight to the failure mode
        now = time.time()
        assert (await store.shared.take("late", POLICY, 1, now, lambda a, n: 1.0)).counted
        assert _value(metrics, "mixtral_shared_state_up") == 1.0
        assert [r.getMessage() for r in caplog.records][-1].endswith("per-key limits hold again")
    finally:
        await store.close()
        redis.kill()


async def test_a_store_that_hangs_holds_the_start_up_only_for_the_bounded_try(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    metrics = ServerMetrics()
    store = RedisKeyLimits(redis.url, "open", metrics, 600.0)
    redis.stop()  # SIGSTOP: the kernel accepts the connection, nothing answers
    try:
        started = time.monotonic()
        await check_at_start(redis.url, store, "open", timeout_s=0.5)
        assert 0.4 <= time.monotonic() - started < 2.0
        assert _value(metrics, "mixtral_shared_state_up") == 0.0
        assert START_CHECK_TIMEOUT_S <= 5.0  # "a few seconds" at most in a real start
    finally:
        redis.resume()
        await store.close()
        redis.kill()


async def test_the_app_checks_the_store_before_it_starts_the_engine(
    tmp_path: Path, locked: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL that cannot work must fail in seconds, not after minutes of model load."""

    async def engine_must_not_start(*_: object) -> None:
        raise AssertionError("the engine was started before the shared store was checked")

    monkeypatch.setattr(server.app, "start_engine", engine_must_not_start)
    app = create_app(_settings(tmp_path, f"redis://:{PASSWORD}@127.0.0.1:{locked.port}/99"))
    with pytest.raises(SharedStateUnusable, match="DB index is out of range"):
        async with LifespanManager(app):
            pass
