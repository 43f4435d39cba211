"""When to retry and how long to wait: exponential backoff with jitter, or what the server asks.

A server that sheds load answers 429 or 503 with `Retry-After`; waiting exactly that long is both
the polite and the fastest way back in. Without it, retries back off exponentially, with full
jitter so that many clients rejected together do not return together.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

# Answers worth asking again: conflicts, rate limits and the server-side transient ones. Not 408:
# the server says so when the request's own `timeout` passed, and the same request would pass it
# again; the server's own deadline is a 504, which is retried.
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


def retry_after_s(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms` (OpenAI's), `Retry-After` as seconds or
    as an HTTP date; None when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` extra attempts after the first; waits of base * 2**attempt, at most `max_delay_s`.

    A server's Retry-After wins over the backoff, up to `max_retry_after_s` (a longer request means
    the caller is better off failing now and deciding itself)."""

    max_retries: int = 2
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0

    def should_retry(self, attempt: int, status: int | None) -> bool:
        """`attempt`: retries already made. `status`: None for a connection failure or timeout."""
        return attempt < self.max_retries and (status is None or status in RETRY_STATUSES)

    def delay_s(self, attempt: int, headers: httpx.Headers | None = None) -> float:
        asked = retry_after_s(headers) if headers is not None else None
        if asked is not None and asked <= self.max_retry_after_s:
            return asked
        ceiling = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return random.uniform(0, ceiling)
