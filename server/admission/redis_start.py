"""The --shared-state store, asked once at start-up: a URL that can never work stops the server
with a message that says why; a store that merely does not answer yet does not.

Why the two differ: a wrong password, a database number Redis does not have, a URL redis-py would
read as something else (`/abc` silently becomes database 0) or an option it does not know stay
wrong until an operator changes the setting, so serving with them would only hide the mistake
behind every request's failure mode. A store that is down, restarting or still loading its
append-only file is the ordinary trouble of a fleet, which the failure mode exists for: the
server starts, marks the store down (the metric, one log line naming the mode that applies) and
finds it again on a later request without a restart. That holds for `--shared-state-failure
closed` too: keyed requests get 503 until the store answers, as they would if it had failed a
minute after the start, while a server that refused to start would turn a store outage into a
restart loop of every replica, unkeyed routes and /metrics included, and come back only after
the loop's back-off once the store is up.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from server.admission.redis_keys import FailureMode, RedisKeyLimits, redacted

START_CHECK_TIMEOUT_S = 3.0


class SharedStateUnusable(RuntimeError):
    """The --shared-state URL cannot work whatever the store's state: the server does not start."""


def check_url_shape(url: str) -> None:
    """What redis-py would accept but read differently from what the operator wrote."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise SharedStateUnusable(f"--shared-state {redacted(url)}: {exc}") from None
    if parts.scheme in ("redis", "rediss"):
        db = unquote(parts.path).strip("/")
        if db and not db.isdigit():
            raise SharedStateUnusable(
                f"--shared-state {redacted(url)}: the path must be a database number (/0), not /{db}"
            )


async def _ping(url: str, timeout_s: float) -> None:
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )
    try:
        async with asyncio.timeout(timeout_s):  # name resolution has no socket timeout
            await client.ping()
    finally:
        await client.aclose()


async def check_at_start(
    url: str, store: RedisKeyLimits, failure: FailureMode, timeout_s: float = START_CHECK_TIMEOUT_S
) -> None:
    """One bounded try. Raises SharedStateUnusable for a URL that cannot work; a store that does
    not answer is recorded in `store.health` (metric and log line) and the start goes on."""
    check_url_shape(url)
    try:
        await _ping(url, timeout_s)
    except AuthenticationError as exc:
        raise SharedStateUnusable(
            f"--shared-state {redacted(url)}: the store refuses these credentials ({exc})"
        ) from None
    except ResponseError as exc:  # DB index is out of range, NOPERM, ...
        raise SharedStateUnusable(f"--shared-state {redacted(url)}: the store refuses it ({exc})") from None
    except (TypeError, ValueError) as exc:  # an option in the query that redis-py does not know
        raise SharedStateUnusable(f"--shared-state {redacted(url)}: {exc}") from None
    except (RedisError, OSError, TimeoutError) as exc:
        store.health.failed(exc, failure)
