"""Admission before the engine: bounded work in flight, per-key limits, 429 with Retry-After.

A request is admitted whole or refused whole, before its response starts; once admitted it holds a
Ticket until its last delta (or its client leaves, or its deadline passes), so the counts always
return to zero. What is counted:
- sequences in flight (running or waiting in the engine; n choices are n sequences), capped by
  `--max-in-flight`;
- prompt tokens admitted but not yet prefilled (until a request's first output), capped by
  `--max-queued-prompt-tokens`;
- per API key: requests at once, and token buckets for requests and tokens a minute. Tokens are
  the prompt plus max_tokens, held while the request runs; the unused part goes back at its end.
Retry-After comes from the work in flight and the measured mean time a request holds its seats
or waits for its prefill (server/admission/seats.py, which also keeps a refused client's place in
line), or the bucket's refill time. All counts live in the shared ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from server.admission.ledger import Ledger, Txn
from server.admission.seats import (
    PREFILL_TIME,
    SEQUENCES,
    UNKNOWN_SEAT_S,
    admits_cold,
    clamp_wait,
    expected_flights,
    occupancy_integral,
    owner_of,
    released,
    seat_time_at,
    seat_wait,
    take_seats,
)
from server.config import Settings
from server.engine.base import Delta, ModelCard
from server.engine.fanout import DeltaStream
from server.errors import InvalidRequestError, RateLimitError
from server.observability.metrics import ServerMetrics

QUEUED_TOKENS = "queued_prompt_tokens"


@dataclass(frozen=True, slots=True)
class Policy:
    max_in_flight: int
    max_queued_prompt_tokens: int
    key_requests_per_minute: int | None
    key_tokens_per_minute: int | None
    key_max_concurrent: int | None

    @classmethod
    def from_settings(cls, settings: Settings, card: ModelCard) -> Policy:
        return cls(
            max_in_flight=settings.max_in_flight or 4 * card.max_num_seqs,
            max_queued_prompt_tokens=settings.max_queued_prompt_tokens or 256 * card.max_num_batched_tokens,
            key_requests_per_minute=settings.key_requests_per_minute,
            key_tokens_per_minute=settings.key_tokens_per_minute,
            key_max_concurrent=settings.key_max_concurrent,
        )


@dataclass(slots=True)
class Ticket:
    key: str | None
    sequences: int
    prompt_tokens: int
    held_tokens: int  # prompt + max_tokens of every sequence, charged to the key's token bucket
    admitted_at: float = 0.0
    flight: int = 0  # its row in the ledger's flights
    started: bool = False
    released: bool = False


def _wait(amount: float, per_second: float) -> float:
    return clamp_wait(amount / per_second)


class Admission:
    """`clock`: wall time (the ledger is shared by processes); tests pass a fake one."""

    def __init__(
        self, ledger: Ledger, policy: Policy, metrics: ServerMetrics, clock: Callable[[], float] = time.time
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._metrics = metrics
        self._clock = clock

    def admit(
        self,
        key: str | None,
        sequences: int,
        prompt_tokens: int,
        max_new_tokens: int,
        token: str | None = None,
    ) -> Ticket:
        """Take the request's share of every limit, or raise RateLimitError (nothing taken, but a
        place in line kept for `key`, or for `token`: what an earlier 429 handed this client)."""
        now = self._clock()
        ticket = Ticket(key, sequences, prompt_tokens, prompt_tokens + max_new_tokens, admitted_at=now)
        try:
            with self._ledger.transaction() as txn:
                self._check_queue(txn, ticket)
                # A refusal here is returned, not raised: the place in line it made must be committed.
                refused = self._take_seats(txn, ticket, owner_of(key, token), now)
                if refused is None:
                    if key is not None:
                        self._take_key(txn, ticket, now)
                    cold = admits_cold(txn, now)
                    integral = occupancy_integral(txn, now)
                    txn.add_load(SEQUENCES, sequences)
                    txn.add_load(QUEUED_TOKENS, prompt_tokens)
                    ticket.flight = txn.open_flight(sequences, now, integral, key, cold)
            if refused is not None:
                raise refused
        except RateLimitError as exc:
            self._metrics.rejections.labels(reason=exc.code or "rate_limit").inc()
            raise
        if key is not None:
            self._metrics.key_in_flight.labels(key=key).inc()
        return ticket

    def _take_seats(self, txn: Txn, ticket: Ticket, owner: str | None, now: float) -> RateLimitError | None:
        p = self._policy
        refused = take_seats(txn, p.max_in_flight, ticket.sequences, owner, now)
        if refused is None:
            return None
        return RateLimitError(
            f"The server is at capacity ({int(txn.load(SEQUENCES))} of {p.max_in_flight} sequences "
            "in flight, or kept for clients waiting their turn). Retry after the time in the "
            "Retry-After header (retry-after-ms: the same, in milliseconds); without an API key, "
            "send back the X-Retry-Token header to keep your place in line.",
            retry_after=refused.wait,
            code="server_overloaded",
            token=refused.token,
        )

    def _check_queue(self, txn: Txn, ticket: Ticket) -> None:
        p = self._policy
        queued = txn.load(QUEUED_TOKENS)
        if queued > 0 and queued + ticket.prompt_tokens > p.max_queued_prompt_tokens:
            # Little's law: tokens leave the queue at (tokens queued) / (mean time one waits).
            excess = queued + ticket.prompt_tokens - p.max_queued_prompt_tokens
            raise RateLimitError(
                f"The server's prompt queue is full ({int(queued)} of {p.max_queued_prompt_tokens} "
                "prompt tokens waiting). Retry after the time in the Retry-After header.",
                retry_after=_wait(excess, queued / (txn.mean(PREFILL_TIME) or UNKNOWN_SEAT_S)),
                code="queue_full",
            )

    def _take_key(self, txn: Txn, ticket: Ticket, now: float) -> None:
        p, key = self._policy, ticket.key
        if p.key_max_concurrent is not None and txn.load(f"key:{key}") + 1 > p.key_max_concurrent:
            seat_time = seat_time_at(txn, txn.load(SEQUENCES))
            raise RateLimitError(
                f"API key '{key}' has {p.key_max_concurrent} requests in flight, its limit.",
                retry_after=clamp_wait(seat_wait(expected_flights(txn, seat_time, key), 1, now, seat_time)),
                code="concurrency_limit_exceeded",
            )
        taken: list[tuple[str, float]] = []
        for kind, limit, cost in (
            ("requests", p.key_requests_per_minute, 1.0),
            ("tokens", p.key_tokens_per_minute, float(ticket.held_tokens)),
        ):
            if limit is None:
                continue
            if cost > limit:
                raise InvalidRequestError(
                    f"This request needs {int(cost)} tokens (prompt plus max_tokens), more than API key "
                    f"'{key}' may use in a minute ({limit}). Lower max_tokens or the prompt.",
                    param="max_tokens",
                )
            name = f"{kind}:{key}"
            level = txn.bucket(name, limit, limit / 60.0, now)
            if level < cost:
                raise RateLimitError(
                    f"API key '{key}' is over its limit of {limit} {kind} per minute.",
                    retry_after=max(1.0, _wait(cost - level, limit / 60.0)),
                    code=f"{kind}_per_minute_exceeded",
                )
            taken.append((name, level - cost))
        for name, level in taken:
            txn.set_bucket(name, level, now)
        txn.add_load(f"key:{key}", 1)

    def started(self, ticket: Ticket) -> None:
        """The request's first output: its prompt is prefilled and leaves the queue."""
        if ticket.started:
            return
        ticket.started = True
        now = self._clock()
        with self._ledger.transaction() as txn:
            txn.add_load(QUEUED_TOKENS, -ticket.prompt_tokens)
            txn.observe(PREFILL_TIME, now - ticket.admitted_at)

    def release(self, ticket: Ticket, completion_tokens: int) -> None:
        """Give everything back; the unused part of max_tokens returns to the key's bucket."""
        if ticket.released:
            return
        ticket.released = True
        now = self._clock()
        with self._ledger.transaction() as txn:
            integral = occupancy_integral(txn, now)
            txn.add_load(SEQUENCES, -ticket.sequences)
            if not ticket.started:
                txn.add_load(QUEUED_TOKENS, -ticket.prompt_tokens)
            if (flight := txn.close_flight(ticket.flight)) is not None:
                since, integral_then, cold = flight
                held = now - since
                occupancy = (integral - integral_then) / held if held > 0 else txn.load(SEQUENCES) + 1
                released(txn, max(float(ticket.sequences), occupancy), held, cold)
            if ticket.key is not None:
                txn.add_load(f"key:{ticket.key}", -1)
                self._refund(txn, ticket, completion_tokens, now)
        if ticket.key is not None:
            self._metrics.key_in_flight.labels(key=ticket.key).dec()

    def _refund(self, txn: Txn, ticket: Ticket, completion_tokens: int, now: float) -> None:
        limit = self._policy.key_tokens_per_minute
        if limit is None:
            return
        unused = max(0, ticket.held_tokens - ticket.prompt_tokens - completion_tokens)
        name = f"tokens:{ticket.key}"
        level = txn.bucket(name, limit, limit / 60.0, now)
        txn.set_bucket(name, min(float(limit), level + unused), now)

    def in_flight(self) -> tuple[int, int]:
        """(sequences in flight, prompt tokens queued), as the ledger has them."""
        with self._ledger.transaction() as txn:
            return int(txn.load(SEQUENCES)), int(txn.load(QUEUED_TOKENS))


class Held:
    """The deltas of an admitted request, holding its ticket until they end or are closed.

    A class rather than an async generator: a generator that was never iterated (its client left
    before the first byte) runs no `finally` when closed, and its ticket would never come back.
    `aclose()` here releases whether or not iteration began; the response closes it in every case.
    """

    __slots__ = ("_admission", "_ticket", "_deltas", "_tokens")

    def __init__(self, admission: Admission, ticket: Ticket, deltas: DeltaStream) -> None:
        self._admission = admission
        self._ticket = ticket
        self._deltas = deltas
        self._tokens = 0

    def __aiter__(self) -> Held:
        return self

    async def __anext__(self) -> tuple[int, Delta]:
        try:
            item = await self._deltas.__anext__()
        except StopAsyncIteration:
            self._admission.release(self._ticket, self._tokens)
            raise
        if not self._ticket.started:
            self._admission.started(self._ticket)
        self._tokens += len(item[1].token_ids)
        return item

    async def aclose(self) -> None:
        try:
            await self._deltas.aclose()
        finally:
            self._admission.release(self._ticket, self._tokens)
