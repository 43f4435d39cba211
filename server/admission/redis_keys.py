"""Per-key limits and usage in Redis (`--shared-state redis://host:port/db`): one count for a fleet.

Every replica runs the same two Lua scripts (server/admission/redis_scripts.py): one to take a
request's share, one to give it back and add its usage. Each is atomic and one round trip per
request. redis-py's Script sends EVALSHA and loads the script when Redis answers NOSCRIPT, so a
restarted (emptied) Redis works again from the next call. A call whose connection fails (a pooled
connection to a Redis that restarted since) is tried once more on a new connection.

When Redis fails (refused, timed out, an error), `--shared-state-failure` decides: `open` lets the
request in uncounted (the replica's own engine admission still bounds its load), `closed` answers
503 `shared_state_unavailable`. Either way the failure is counted
(`mixtral_shared_state_errors_total`), `mixtral_shared_state_up` turns 0, and one log line is
written when the store goes down and one when it answers again. Calls time out after
`CALL_TIMEOUT_S`; after a failure the store is tried again only once per `PROBE_INTERVAL_S` (the
calls between go straight to the failure mode), so a store that hangs adds that timeout to one
request a second, not to every request.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from typing import Literal

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from server.admission.key_limits import (
    ConcurrencyWait,
    DayUsage,
    KeyPolicy,
    KeyShare,
    bucket_refusal,
    concurrency_refusal,
    last_days,
    quota_refusal,
    utc_day,
)
from server.admission.redis_scripts import GIVE_BACK, TAKE, day_key, key_names
from server.errors import EngineUnavailableError
from server.observability.metrics import ServerMetrics

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 0.5
PROBE_INTERVAL_S = 1.0
FailureMode = Literal["open", "closed"]
_FAILURES = (RedisError, OSError, TimeoutError)


class StoreHealth:
    """Up or down, as the last call found the store: the metric, and a log line per change."""

    def __init__(self, metrics: ServerMetrics, where: str, probe_interval_s: float) -> None:
        self._metrics = metrics
        self._where = where
        self._probe_interval_s = probe_interval_s
        self._next_probe = 0.0
        self.up = True
        metrics.shared_state_up.set(1)

    def worth_a_call(self) -> bool:
        """Up, or down long enough that it is time to try it again."""
        return self.up or time.monotonic() >= self._next_probe

    def answered(self) -> None:
        if not self.up:
            self.up = True
            self._metrics.shared_state_up.set(1)
            logger.warning("shared state store %s answers again: per-key limits hold again", self._where)

    def failed(self, exc: BaseException, mode: FailureMode) -> None:
        self._metrics.shared_state_errors.inc()
        self._next_probe = time.monotonic() + self._probe_interval_s
        if self.up:
            self.up = False
            self._metrics.shared_state_up.set(0)
            outcome = "let in uncounted" if mode == "open" else "refused with 503"
            logger.error(
                "shared state store %s failed (%s: %s): requests with API keys are %s until it answers",
                self._where,
                type(exc).__name__,
                exc,
                outcome,
            )


class _Skipped(Exception):
    """The store failed a moment ago: not tried again yet."""


def redacted(url: str) -> str:
    """The URL without a password, for log lines."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]


class RedisKeyLimits:
    """`flight_ttl_s`: how long a request counts against its key's concurrency if its replica dies
    before giving it back (the server's request deadline and a margin)."""

    def __init__(
        self,
        url: str,
        failure: FailureMode,
        metrics: ServerMetrics,
        flight_ttl_s: float,
        probe_interval_s: float = PROBE_INTERVAL_S,
    ) -> None:
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=CALL_TIMEOUT_S,
            socket_connect_timeout=CALL_TIMEOUT_S,
            # Once, at once, on a fresh connection, and only when the connection failed (not on a
            # timeout): after Redis restarts, every connection pooled before it fails on its next
            # use; without this each of them let one request in uncounted.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            retry_on_timeout=False,
            decode_responses=True,
        )
        self._take = self._client.register_script(TAKE)
        self._give_back = self._client.register_script(GIVE_BACK)
        self._failure: FailureMode = failure
        self._flight_ttl_s = flight_ttl_s
        self.health = StoreHealth(metrics, redacted(url), probe_interval_s)

    def _unavailable(self, exc: BaseException | None) -> EngineUnavailableError:
        if exc is not None:
            self.health.failed(exc, self._failure)
        return EngineUnavailableError(
            "The store that holds per-key limits does not answer; retry shortly.",
            code="shared_state_unavailable",
        )

    async def take(
        self, key: str, policy: KeyPolicy, held_tokens: int, now: float, wait: ConcurrencyWait
    ) -> KeyShare:
        flight = f"{now:.3f}:{secrets.token_hex(6)}"
        args: list[str | int] = [
            repr(now),
            policy.requests_per_minute or 0,
            policy.tokens_per_minute or 0,
            policy.max_concurrent or 0,
            policy.tokens_per_day or 0,
            policy.tokens_per_month or 0,
            held_tokens,
            flight,
            repr(now + self._flight_ttl_s),
            math.ceil(self._flight_ttl_s),
        ]
        try:
            if not self.health.worth_a_call():
                raise _Skipped
            answer = await self._take(keys=key_names(key, utc_day(now)), args=args)
        except (*_FAILURES, _Skipped) as exc:
            error = self._unavailable(None if isinstance(exc, _Skipped) else exc)
            if self._failure == "closed":
                raise error from None
            return KeyShare(key, policy, held_tokens, counted=False)
        self.health.answered()
        verdict, rest = str(answer[0]), [str(item) for item in answer[1:]]
        if verdict == "ok":
            return KeyShare(key, policy, held_tokens, flight=flight)
        if verdict in ("day", "month"):
            limit = policy.tokens_per_day if verdict == "day" else policy.tokens_per_month
            raise quota_refusal(key, verdict, limit or 0, now)
        if verdict == "concurrency":
            admitted = [float(member.partition(":")[0]) for member in rest]
            raise concurrency_refusal(key, policy.max_concurrent or 0, wait(admitted, now))
        limit = policy.requests_per_minute if verdict == "requests" else policy.tokens_per_minute
        raise bucket_refusal(key, verdict, limit or 0, float(rest[0]))

    async def give_back(
        self, share: KeyShare, prompt_tokens: int, completion_tokens: int, now: float, *, served: bool
    ) -> None:
        """A failure here is logged and counted, never raised: the request is over, and what it
        held expires by itself (the buckets refill, the flight's score runs out)."""
        if not share.counted:
            return
        unused = max(0, share.held_tokens - prompt_tokens - completion_tokens)
        args: list[str | int] = [
            share.flight,
            repr(now),
            share.policy.requests_per_minute or 0,
            share.policy.tokens_per_minute or 0,
            share.held_tokens,
            unused,
            1 if served else 0,
            prompt_tokens,
            completion_tokens,
        ]
        if not self.health.worth_a_call():
            return
        try:
            await self._give_back(keys=key_names(share.key, utc_day(now)), args=args)
        except _FAILURES as exc:
            self.health.failed(exc, self._failure)
            return
        self.health.answered()

    async def usage(self, key: str, days: int, now: float) -> list[DayUsage]:
        wanted = last_days(days, now)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for day in wanted:
                    pipe.hmget(day_key(key, day), "requests", "prompt_tokens", "completion_tokens")
                rows = await pipe.execute()
        except _FAILURES as exc:
            raise self._unavailable(exc) from exc
        self.health.answered()
        return [
            DayUsage(day, *(int(value or 0) for value in row)) for day, row in zip(wanted, rows, strict=True)
        ]

    async def close(self) -> None:
        await self._client.aclose()
