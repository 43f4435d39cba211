"""Admission before the engine: bounded work in flight, per-key limits, 429 with Retry-After.

A request is admitted whole or refused whole, before its response starts; once admitted it holds a
Ticket until its last delta (or its client leaves, or its deadline passes), so the counts always
return to zero. What is counted:
- sequences in flight (running or waiting in the engine; n choices are n sequences), capped by
  `--max-in-flight`;
- prompt tokens admitted but not yet prefilled (until a request's first output), capped by
  `--max-queued-prompt-tokens`;
- per API key (server/admission/key_limits.py; each key may have its own): requests at once, token
  buckets for requests and tokens a minute, tokens a day and a month. Tokens are the prompt plus
  max_tokens, held while the request runs; the unused part goes back at its end.
Retry-After comes from the work in flight and the measured mean time a request holds its seats
or waits for its prefill (server/admission/seats.py, which also keeps a refused client's place in
line), or the bucket's refill time. Engine counts live in the ledger every front end of this
server shares. Per-key counts live there too (one transaction for the whole decision), unless a
store the fleet shares holds them (`--shared-state`): then `enter` takes the key's share there
first, then the seats here, and gives the key's share back if the seats refuse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from server.admission.embedded_keys import EmbeddedKeyLimits
from server.admission.key_limits import KeyLimits, KeyPolicy, KeyShare, check_size
from server.admission.keys import KeyRing
from server.admission.ledger import Ledger, Txn
from server.admission.seats import (
    PREFILL_TIME,
    SEQUENCES,
    UNKNOWN_SEAT_S,
    admits_cold,
    clamp_wait,
    occupancy_integral,
    owner_of,
    released,
    seat_time_at,
    seat_wait,
    take_seats,
)
from server.admission.usage import UsageBook
from server.config import Settings
from server.engine.base import Delta, ModelCard
from server.engine.fanout import DeltaStream
from server.errors import RateLimitError
from server.observability.metrics import ServerMetrics

QUEUED_TOKENS = "queued_prompt_tokens"


@dataclass(frozen=True, slots=True)
class Policy:
    max_in_flight: int
    max_queued_prompt_tokens: int
    key_requests_per_minute: int | None
    key_tokens_per_minute: int | None
    key_max_concurrent: int | None
    key_tokens_per_day: int | None = None
    key_tokens_per_month: int | None = None
    keys: Mapping[str, KeyPolicy] = field(default_factory=dict)  # keys with limits of their own

    @classmethod
    def from_settings(cls, settings: Settings, card: ModelCard, ring: KeyRing | None = None) -> Policy:
        """`ring`: the configured keys, some maybe with limits of their own."""
        policy = cls(
            max_in_flight=settings.max_in_flight or 4 * card.max_num_seqs,
            max_queued_prompt_tokens=settings.max_queued_prompt_tokens or 256 * card.max_num_batched_tokens,
            key_requests_per_minute=settings.key_requests_per_minute,
            key_tokens_per_minute=settings.key_tokens_per_minute,
            key_max_concurrent=settings.key_max_concurrent,
            key_tokens_per_day=settings.key_tokens_per_day,
            key_tokens_per_month=settings.key_tokens_per_month,
        )
        if ring is None:
            return policy
        return replace(policy, keys=ring.policies(policy.default_key_policy()))

    def default_key_policy(self) -> KeyPolicy:
        return KeyPolicy(
            requests_per_minute=self.key_requests_per_minute,
            tokens_per_minute=self.key_tokens_per_minute,
            max_concurrent=self.key_max_concurrent,
            tokens_per_day=self.key_tokens_per_day,
            tokens_per_month=self.key_tokens_per_month,
        )

    def for_key(self, key: str) -> KeyPolicy:
        return self.keys.get(key) or self.default_key_policy()


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
    share: KeyShare | None = None  # the key's share of its limits, until it is given back


def _wait(amount: float, per_second: float) -> float:
    return clamp_wait(amount / per_second)


class Admission:
    """`clock`: wall time (the ledger is shared by processes); tests pass a fake one. `shared`: the
    store a fleet shares for per-key limits (None: the ledger holds them); `usage`: this host's usage
    file when there is no shared store."""

    def __init__(
        self,
        ledger: Ledger,
        policy: Policy,
        metrics: ServerMetrics,
        clock: Callable[[], float] = time.time,
        *,
        shared: KeyLimits | None = None,
        usage: UsageBook | None = None,
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._embedded = EmbeddedKeyLimits(ledger, usage)
        self._shared = shared

    @property
    def key_limits(self) -> KeyLimits:
        return self._shared if self._shared is not None else self._embedded

    async def enter(
        self,
        key: str | None,
        sequences: int,
        prompt_tokens: int,
        max_new_tokens: int,
        token: str | None = None,
    ) -> Ticket:
        """`admit`, with the key's share taken first from the shared store when there is one."""
        if self._shared is None or key is None:
            return self.admit(key, sequences, prompt_tokens, max_new_tokens, token)
        policy, held = self._policy.for_key(key), prompt_tokens + max_new_tokens
        check_size(key, policy, held)
        try:
            share = await self._shared.take(key, policy, held, self._clock(), self._concurrency_wait)
        except RateLimitError as exc:
            self._metrics.rejections.labels(reason=exc.code or "rate_limit").inc()
            raise
        try:
            ticket = self.admit(key, sequences, prompt_tokens, max_new_tokens, token, keyed=False)
        except BaseException:
            await asyncio.shield(self._shared.give_back(share, 0, 0, self._clock(), served=False))
            raise
        ticket.share = share
        return ticket

    async def leave(self, ticket: Ticket, completion_tokens: int) -> None:
        """`release`, and the key's share back to the shared store (even if the caller is cancelled:
        a share never given back counts against the key until it expires)."""
        self.release(ticket, completion_tokens)
        share, ticket.share = ticket.share, None
        if share is not None and self._shared is not None:
            give_back = self._shared.give_back(
                share, ticket.prompt_tokens, completion_tokens, self._clock(), served=True
            )
            await asyncio.shield(give_back)

    def _concurrency_wait(self, admitted: list[float], now: float) -> float:
        """When one of the key's requests in flight (on any replica) should end, from this replica's
        measured seat time."""
        with self._ledger.transaction() as txn:
            seat_time = seat_time_at(txn, txn.load(SEQUENCES))
        return clamp_wait(seat_wait([(at, 1) for at in admitted], 1, now, seat_time))

    def admit(
        self,
        key: str | None,
        sequences: int,
        prompt_tokens: int,
        max_new_tokens: int,
        token: str | None = None,
        *,
        keyed: bool = True,
    ) -> Ticket:
        """Take the request's share of every limit, or raise RateLimitError (nothing taken, but a
        place in line kept for `key`, or for `token`: what an earlier 429 handed this client).
        `keyed`: the key's share is taken here, in the ledger (else the caller took it elsewhere)."""
        now = self._clock()
        ticket = Ticket(key, sequences, prompt_tokens, prompt_tokens + max_new_tokens, admitted_at=now)
        try:
            with self._ledger.transaction() as txn:
                self._check_queue(txn, ticket)
                # A refusal here is returned, not raised: the place in line it made must be committed.
                refused = self._take_seats(txn, ticket, owner_of(key, token), now)
                if refused is None:
                    if key is not None and keyed:
                        policy = self._policy.for_key(key)
                        self._embedded.take_in(txn, key, policy, ticket.held_tokens, now)
                        ticket.share = KeyShare(key, policy, ticket.held_tokens)
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
            embedded = ticket.share if self._shared is None else None
            if embedded is not None:
                unused = ticket.held_tokens - ticket.prompt_tokens - completion_tokens
                self._embedded.give_back_in(txn, embedded, max(0, unused), now, served=True)
        if ticket.key is not None:
            if self._shared is None:
                ticket.share = None
                self._embedded.record(ticket.key, ticket.prompt_tokens, completion_tokens, now)
            self._metrics.key_in_flight.labels(key=ticket.key).dec()
            self._metrics.key_requests.labels(key=ticket.key).inc()
            self._metrics.key_tokens.labels(key=ticket.key, kind="prompt").inc(ticket.prompt_tokens)
            self._metrics.key_tokens.labels(key=ticket.key, kind="completion").inc(completion_tokens)

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
            await self._admission.leave(self._ticket, self._tokens)
            raise
        if not self._ticket.started:
            self._admission.started(self._ticket)
        self._tokens += len(item[1].token_ids)
        return item

    async def aclose(self) -> None:
        try:
            await self._deltas.aclose()
        finally:
            await self._admission.leave(self._ticket, self._tokens)
