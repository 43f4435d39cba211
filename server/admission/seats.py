"""Seats in flight: who gets one that frees, and when a refused request should come back.

Retry-After is an estimate from the work actually in flight, not from a rate: seats free about
one seat time after they were taken, oldest first. After an idle minute that still says "when the
burst now running ends", not 60 s; under sustained overload it grows with the line of clients
waiting, instead of saying 1 s to everyone.

The seat time depends on how full the engine is: on a CPU four requests at once each take about
twice as long as one alone; on a GPU batching is almost free. So it is learnt as a line over the
occupancy each request ran at (a least-squares fit on running means, `seat_time_at`), and a refusal
asks for the time at full occupancy, which is what the clients in line will run at. Until the server
has seen two different occupancies there is no slope to fit: it then assumes the geometric middle of
the two extremes (time grows with the square root of the occupancy), which is within 2x of either
for up to 4x the occupancy it measured.

Fairness. A client that waits as told must never do worse than one that retries at once. Without
care it does: while it sleeps, the hammering clients take every seat that frees. So a refusal is a
place in line (a `Reservation`): from its hold time until it expires, seats that free are kept for
it, and only its owner may take them. The owner is the API key when there is one (one place per
key: a key's refused requests share it), else a token the 429 hands out in the `X-Retry-Token`
header and the retry presents. A key's place holds from the time it was told. An anonymous place
holds only once its owner came back with the token when told: a client that ignores Retry-After
and the token gets a new token at every refusal, and those places, never claimed, must not hold
seats. An owner that comes back before the time it was last told keeps its place and gets no seat,
not even a free one: a client polling every few milliseconds would otherwise take the seats that
free before the estimate (and, once its place holds, its own seat the moment it frees), which one
that sleeps as told cannot; simulated with clients that take 10 ms to send their next request
(bench/studies/admission_line), letting it take a free seat put hammering ahead, 0.76 s against
1.05 s at p50. The price: a key shared by many workers has one place at a time, and while it
waits its other workers are told the same time. An owner back when told whose seat has not freed
yet is told to recheck soon (RECHECK_SHARE): its seat, once free, idles until it is back. Places of
keys do not hold from the refusal on: every seat freeing before an estimate would then idle until
its owner's time, the engine would run emptier, requests faster than estimated, and the estimates
drift ever more pessimistic (simulated: mean occupancy 1.2 of 4). A place not claimed within
HOLD_GRACE_S of its due time is dropped, so an owner that gave up keeps seats idle for at most that
long past it.

Each decision is part of the caller's one ledger transaction; several front ends share the ledger.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass

from server.admission.ledger import Reservation, Txn

SEQUENCES = "sequences"
OCCUPANCY_INTEGRAL = "sequence_seconds"  # SEQUENCES integrated over time, up to OCCUPANCY_AT
OCCUPANCY_AT = "sequence_seconds_at"
# Requests admitted while the engine wakes from an idle spell run slower (measured here: the first
# batch after an idle minute took 3 to 4 times as long as the next). Such "cold" requests are
# those admitted after at least COLD_IDLE_S of idle and before the first of them ends; COLD_FACTOR
# is the running mean of their seat time over what the occupancy line predicts for them.
COLD_IDLE_S = 10.0
COLD = "cold"  # 1 while the requests admitted after an idle spell are cold
COLD_FACTOR = "cold_factor"
COLD_WEIGHT = 0.5
SEAT_TIME = "seat_seconds"  # mean time a request holds its seats, admission to release
# Running means for the line seat time = a + b * occupancy: of the occupancy, its square, and
# occupancy times seat time (with SEAT_TIME, the sums of a least-squares fit).
SEAT_N, SEAT_NN, SEAT_NT = "seat_occupancy", "seat_occupancy_sq", "seat_occupancy_x_seconds"
MIN_SPREAD = 0.1  # variance of the occupancies seen (seats squared) below which no slope is fitted
PRIOR_SPAN = 16.0  # the square-root guess is used up to this ratio of occupancies
PREFILL_TIME = "prefill_seconds"  # mean time from admission to a request's first output
UNKNOWN_SEAT_S = 2.0  # before anything was measured
MIN_WAIT_S = 0.05
MAX_WAIT_S = 60.0
HOLD_GRACE_S = 2.0
# A place that holds and whose seat has not freed yet is told to come back after this share of the
# mean gap between two seats freeing (simulated, bench/studies/admission_line: 1/4 keeps the engine
# 3.8 of 4 full, the whole gap 3.7 and the full estimate 3.4).
RECHECK_SHARE = 0.25
KEY_OWNER = "key:"
TOKEN_OWNER = "token:"
_TOKEN = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Refused:
    wait: float  # seconds
    token: str | None  # for X-Retry-Token: the anonymous owner's place, None for an API key's


def owner_of(key: str | None, token: str | None) -> str | None:
    """Whose place a request may claim: its API key's, else the token it presents (if well formed)."""
    if key is not None:
        return KEY_OWNER + key
    if token is not None and _TOKEN.fullmatch(token):
        return TOKEN_OWNER + token
    return None


def seat_wait(flights: list[tuple[float, int]], seats: int, now: float, seat_time: float) -> float:
    """Seconds until `seats` more seats are free. The requests in flight (admitted at, sequences;
    oldest first) free theirs about `seat_time` after admission, one overdue frees soon (in the
    steady gap between two seats freeing); past all of them, each round takes another seat_time."""
    if seats <= 0:
        return 0.0
    total = sum(n for _, n in flights)
    if total == 0:
        return seat_time
    rounds, rest = divmod(seats - 1, total)
    seen = 0
    since = flights[-1][0]
    for since, n in flights:  # noqa: B007 (the loop finds `since`)
        seen += n
        if seen > rest:
            break
    gap = seat_time / total
    return max(since + seat_time - now, gap) + rounds * seat_time


def admits_cold(txn: Txn, now: float) -> bool:
    """Whether a request admitted now starts on a waking engine. Call before occupancy_integral."""
    if txn.load(SEQUENCES) == 0 and now - txn.load(OCCUPANCY_AT) >= COLD_IDLE_S:
        txn.add_load(COLD, 1 - txn.load(COLD))
    return txn.load(COLD) > 0


def released(txn: Txn, occupancy: float, seconds: float, cold: bool) -> None:
    """A request held its seats `seconds` at `occupancy`: learn from it (the cold ones, only how much
    slower they were; their ending ends the cold spell)."""
    if not cold:
        observe_seat(txn, occupancy, seconds)
        return
    txn.add_load(COLD, -txn.load(COLD))
    expected = seat_time_at(txn, occupancy) if txn.mean(SEAT_TIME) is not None else 0.0
    if expected > 0:  # else there is no line to compare with
        # Idle spells are rare: the last one's requests count most.
        txn.observe(COLD_FACTOR, max(1.0, seconds / expected), weight=COLD_WEIGHT)


def expected_flights(txn: Txn, seat_time: float, key: str | None = None) -> list[tuple[float, int]]:
    """The flights for seat_wait, a cold one moved later by the time it is expected to run over."""
    factor = txn.mean(COLD_FACTOR) or 1.0
    shifted = [
        (since + (factor - 1) * seat_time if cold else since, n) for since, n, cold in txn.flights(key)
    ]
    return sorted(shifted)


def occupancy_integral(txn: Txn, now: float) -> float:
    """Sequences in flight integrated over time (sequence-seconds) up to `now`. Call it before every
    change of SEQUENCES; the difference between two readings over the time between them is the
    mean occupancy a request ran at."""
    at = txn.load(OCCUPANCY_AT)
    elapsed = max(0.0, now - at) if at > 0 else 0.0
    txn.add_load(OCCUPANCY_INTEGRAL, txn.load(SEQUENCES) * elapsed)
    txn.add_load(OCCUPANCY_AT, max(0.0, now - at))
    return txn.load(OCCUPANCY_INTEGRAL)


def observe_seat(txn: Txn, occupancy: float, seconds: float) -> None:
    """A request held its seats `seconds` while `occupancy` sequences were in flight on average."""
    txn.observe(SEAT_N, occupancy)
    txn.observe(SEAT_TIME, seconds)
    txn.observe(SEAT_NN, occupancy * occupancy)
    txn.observe(SEAT_NT, occupancy * seconds)


def seat_time_at(txn: Txn, occupancy: float) -> float:
    """How long a request holds its seats when `occupancy` sequences are in flight."""
    t, n, nn, nt = (txn.mean(name) for name in (SEAT_TIME, SEAT_N, SEAT_NN, SEAT_NT))
    if t is None:
        return UNKNOWN_SEAT_S
    if n is None or nn is None or nt is None or n <= 0:
        return t
    spread = nn - n * n
    if spread >= MIN_SPREAD:
        slope = max(0.0, (nt - n * t) / spread)
        return max(t / 4, t + slope * (occupancy - n))
    ratio = min(PRIOR_SPAN, max(1 / PRIOR_SPAN, occupancy / n))
    return t * math.sqrt(ratio)


def clamp_wait(wait: float) -> float:
    return min(MAX_WAIT_S, max(MIN_WAIT_S, wait))


def take_seats(txn: Txn, capacity: int, need: int, owner: str | None, now: float) -> Refused | None:
    """None: `need` seats are free for this owner (its place, if any, is used up; the caller adds
    the load). Else the wait, with the owner's place kept, made or checked in."""
    txn.expire_reservations(now)
    in_flight = int(txn.load(SEQUENCES))
    mine = txn.reservation(owner) if owner is not None else None
    holding = mine is not None and mine.holds_from is not None and mine.holds_from <= now
    if mine is not None and now < mine.due:  # early: the place stays, the owner waits its time
        return Refused(clamp_wait(mine.due - now), _token(mine.owner))
    before = mine.place if mine is not None and holding else None  # held for those ahead of it only
    if in_flight + txn.reserved(now, before=before, holding=True) + need <= capacity:
        if mine is not None:
            txn.drop_reservation(mine.owner)
        return None
    ahead = txn.reserved(now, before=mine.place if mine is not None else None, holding=False)
    seat_time = seat_time_at(txn, capacity)  # those in line run on a full engine
    flights = expected_flights(txn, seat_time)
    wait = clamp_wait(seat_wait(flights, in_flight + ahead + need - capacity, now, seat_time))
    if mine is not None:  # back when told: from now on freed seats are kept for it
        # Its seat is kept, idle, from when it frees until the owner is back: so a recheck after a
        # share of the gap between two seats freeing, not the whole estimate.
        wait = clamp_wait(min(wait, RECHECK_SHARE * seat_time / capacity))
        place, owner = mine.place, mine.owner
        holds: float | None = now if mine.holds_from is None else min(mine.holds_from, now)
    else:
        place, owner = txn.next_place(), owner or TOKEN_OWNER + secrets.token_hex(16)
        holds = now + wait if owner.startswith(KEY_OWNER) else None
    txn.put_reservation(Reservation(owner, place, need, now + wait, now + wait + HOLD_GRACE_S, holds))
    return Refused(wait, _token(owner))


def _token(owner: str) -> str | None:
    return owner.removeprefix(TOKEN_OWNER) if owner.startswith(TOKEN_OWNER) else None
