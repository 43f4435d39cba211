"""Per-key limits as one interface, so that they can live on this host or in a store a fleet shares.

Engine admission (sequences in flight, queued prompt tokens, the line) is a replica's own capacity
and stays in its ledger. What a key may use is the key's, whichever replica serves it: requests and
tokens a minute, requests at once, tokens a day or a month. `KeyLimits.take` takes a request's share
of those (or raises the 429), `give_back` returns what it did not use and records what it did
(`usage`), and the gate takes the key's share before the seats, giving it back if the seats refuse.

Two implementations: `EmbeddedKeyLimits` (server/admission/embedded_keys.py; the ledger and a
usage file, one host) and `RedisKeyLimits` (server/admission/redis_keys.py, `--shared-state`).

Quotas count the tokens of requests that ended (prompt plus completion): a quota is checked at
admission, so requests in flight when it is reached may take a key past it by their own size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from server.errors import InvalidRequestError, RateLimitError

# The options a key's line may set (`rpm=60 tpm=20000 concurrent=2 daily_tokens=... monthly_tokens=...`).
OPTION_FIELDS = {
    "rpm": "requests_per_minute",
    "tpm": "tokens_per_minute",
    "concurrent": "max_concurrent",
    "daily_tokens": "tokens_per_day",
    "monthly_tokens": "tokens_per_month",
}
NO_LIMIT = "none"
# How long a key's request may count against its concurrency in a shared store when the replica
# that took it never gives it back (it was killed): past this it no longer counts.
ORPHAN_FLIGHT_S = 3600.0


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What one key may use; None: no limit of that kind."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None

    def with_options(self, options: dict[str, str]) -> KeyPolicy:
        """This policy with a key line's `name=value` options over it (`none` lifts a limit)."""
        changes: dict[str, int | None] = {}
        for option, raw in options.items():
            attribute = OPTION_FIELDS.get(option)
            if attribute is None:
                raise ValueError(f"unknown key option {option!r} (known: {', '.join(OPTION_FIELDS)})")
            if raw == NO_LIMIT:
                changes[attribute] = None
                continue
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"key option {option}={raw!r} is not a whole number above 0 or 'none'")
            changes[attribute] = int(raw)
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: str  # YYYY-MM-DD, UTC
    requests: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
class KeyShare:
    """What `take` took for one request; `give_back` returns it. `counted` is False when the store
    was down and the request went in without being counted (fail-open): nothing to give back."""

    key: str
    policy: KeyPolicy
    held_tokens: int
    flight: str = ""
    counted: bool = True


# (admission times of the key's requests in flight, oldest first; now) -> seconds until one ends.
ConcurrencyWait = Callable[[list[float], float], float]


class KeyLimits(Protocol):
    async def take(
        self, key: str, policy: KeyPolicy, held_tokens: int, now: float, wait: ConcurrencyWait
    ) -> KeyShare:
        """The request's share of the key's limits, or RateLimitError (nothing taken)."""
        ...

    async def give_back(
        self, share: KeyShare, prompt_tokens: int, completion_tokens: int, now: float, *, served: bool
    ) -> None:
        """`served`: the request ran (its usage is recorded, its unused tokens come back); else it
        never did (the seats refused it) and all it took comes back."""
        ...

    async def usage(self, key: str, days: int, now: float) -> list[DayUsage]:
        """The key's usage on each of the last `days` days (UTC), today last."""
        ...

    async def close(self) -> None: ...


def utc_day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d")


def utc_month(now: float) -> str:
    return utc_day(now)[:7]


def last_days(days: int, now: float) -> list[str]:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return [(today - dt.timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]


def next_midnight(now: float) -> float:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    start = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return start.timestamp()


def next_month(now: float) -> float:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp()


def check_size(key: str, policy: KeyPolicy, held_tokens: int) -> None:
    """A request larger than the key may use in a minute can never go in: a 400, not a 429."""
    limit = policy.tokens_per_minute
    if limit is not None and held_tokens > limit:
        raise InvalidRequestError(
            f"This request needs {held_tokens} tokens (prompt plus max_tokens), more than API key "
            f"'{key}' may use in a minute ({limit}). Lower max_tokens or the prompt.",
            param="max_tokens",
        )


def quota_refusal(key: str, period: str, limit: int, now: float) -> RateLimitError:
    """Past a daily or monthly quota: come back when it resets (UTC midnight, or the 1st)."""
    reset = next_midnight(now) if period == "day" else next_month(now)
    return RateLimitError(
        f"API key '{key}' has used its quota of {limit} tokens this {period} (UTC); it resets at "
        f"{dt.datetime.fromtimestamp(reset, dt.UTC).isoformat()}.",
        retry_after=max(1.0, reset - now),
        code="quota_exceeded",
    )


def bucket_refusal(key: str, kind: str, limit: int, wait: float) -> RateLimitError:
    return RateLimitError(
        f"API key '{key}' is over its limit of {limit} {kind} per minute.",
        retry_after=max(1.0, wait),
        code=f"{kind}_per_minute_exceeded",
    )


def concurrency_refusal(key: str, limit: int, wait: float) -> RateLimitError:
    return RateLimitError(
        f"API key '{key}' has {limit} requests in flight, its limit.",
        retry_after=wait,
        code="concurrency_limit_exceeded",
    )
