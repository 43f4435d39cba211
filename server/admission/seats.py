"""Seats in flight: who gets one that frees, and when a refused request should come back.

Retry-After is an estimate from the work actually in flight, not from a rate: seats free about
one mean seat time (measured per request) after they were taken, oldest first. After an idle
minute that still says "when the burst now running ends", not 60 s; under sustained overload it
grows with the line of clients waiting, instead of saying 1 s to everyone.

Fairness. A client that waits as told must never do worse than one that retries at once. Without
care it does: while it sleeps, the hammering clients take every seat that frees. So a refusal is a
place in line (a `Reservation`): from its hold time until it expires, seats that free are kept for
it, and only its owner may take them. The owner is the API key when there is one (one place per
key), else a token the 429 hands out in the `X-Retry-Token` header and the retry presents. An
anonymous place holds only once its owner came back with the token at or after the time it was
told: a client that ignores Retry-After and the token gets a new token at every refusal, and those
places, never claimed, must not hold seats. Coming back early keeps the place and is refused even
if a seat is free (else a client polling every few milliseconds would take the seats that free
before the estimate, which one that sleeps as told cannot), so hammering gains nothing over
waiting. A place not claimed within HOLD_GRACE_S of its hold is dropped, so an owner that gave up
keeps seats idle for at most that long.

Each decision is part of the caller's one ledger transaction; several front ends share the ledger.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from server.admission.ledger import Reservation, Txn

SEQUENCES = "sequences"
SEAT_TIME = "seat_seconds"  # mean time a request holds its seats, admission to release
PREFILL_TIME = "prefill_seconds"  # mean time from admission to a request's first output
UNKNOWN_SEAT_S = 2.0  # before anything was measured
MIN_WAIT_S = 0.05
MAX_WAIT_S = 60.0
HOLD_GRACE_S = 2.0
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


def _clamp(wait: float) -> float:
    return min(MAX_WAIT_S, max(MIN_WAIT_S, wait))


def take_seats(txn: Txn, capacity: int, need: int, owner: str | None, now: float) -> Refused | None:
    """None: `need` seats are free for this owner (its place, if any, is used up; the caller adds
    the load). Else the wait, with the owner's place kept, made or checked in."""
    txn.expire_reservations(now)
    in_flight = int(txn.load(SEQUENCES))
    mine = txn.reservation(owner) if owner is not None else None
    holding = mine is not None and mine.holds_from is not None and mine.holds_from <= now
    if mine is not None and not holding and now < mine.due:  # early: the place stays, it waits its turn
        return Refused(_clamp(mine.due - now), _token(mine.owner))
    before = mine.place if mine is not None and holding else None  # held for those ahead of it only
    if in_flight + txn.reserved(now, before=before, holding=True) + need <= capacity:
        if mine is not None:
            txn.drop_reservation(mine.owner)
        return None
    if mine is not None and now < mine.due:  # holding, back before its seat freed
        return Refused(_clamp(mine.due - now), _token(mine.owner))
    ahead = txn.reserved(now, before=mine.place if mine is not None else None, holding=False)
    seat_time = txn.mean(SEAT_TIME) or UNKNOWN_SEAT_S
    wait = _clamp(seat_wait(txn.flights(), in_flight + ahead + need - capacity, now, seat_time))
    if mine is not None:  # back when told: from now on freed seats are kept for it
        place, owner = mine.place, mine.owner
        holds: float | None = now if mine.holds_from is None else min(mine.holds_from, now)
    else:
        place, owner = txn.next_place(), owner or TOKEN_OWNER + secrets.token_hex(16)
        holds = now + wait if owner.startswith(KEY_OWNER) else None
    txn.put_reservation(Reservation(owner, place, need, now + wait, now + wait + HOLD_GRACE_S, holds))
    return Refused(wait, _token(owner))


def _token(owner: str) -> str | None:
    return owner.removeprefix(TOKEN_OWNER) if owner.startswith(TOKEN_OWNER) else None
