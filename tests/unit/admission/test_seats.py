"""Retry-After from the work in flight, and places in line for the clients that honour it, on the real
SQLite ledger with a fake clock (server/admission/seats.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.admission.gate import Admission, Policy, Ticket
from server.admission.ledger import Ledger
from server.admission.seats import HOLD_GRACE_S, seat_time_at, seat_wait
from server.errors import RateLimitError
from server.observability.metrics import ServerMetrics

CAPACITY = 4


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def gate(tmp_path: Path, clock: Clock, capacity: int = CAPACITY) -> Admission:
    policy = Policy(capacity, 10_000, None, None, None)
    return Admission(Ledger(tmp_path / "ledger.sqlite3"), policy, ServerMetrics(), clock=clock)


def refusal(adm: Admission, key: str | None = None, token: str | None = None) -> RateLimitError:
    with pytest.raises(RateLimitError) as refused:
        adm.admit(key, 1, 1, 1, token=token)
    return refused.value


def test_seat_wait_counts_from_the_oldest_requests_in_flight() -> None:
    burst = [(100.0, 1)] * 4  # four admitted together: all free about one seat time later
    assert seat_wait(burst, 1, now=100.5, seat_time=1.3) == pytest.approx(0.8)
    assert seat_wait(burst, 4, now=100.5, seat_time=1.3) == pytest.approx(0.8)
    assert seat_wait(burst, 5, now=100.5, seat_time=1.3) == pytest.approx(2.1)  # the next round
    steady = [(100.0 + i * 0.25, 1) for i in range(4)]  # one admitted every 0.25 s, 1 s each
    assert seat_wait(steady, 2, now=101.0, seat_time=1.0) == pytest.approx(0.25)
    overdue = [(90.0, 2)]  # longer than the mean: soon, in the gap between two seats freeing
    assert seat_wait(overdue, 1, now=100.0, seat_time=1.0) == pytest.approx(0.5)
    assert seat_wait(steady, 0, now=101.0, seat_time=1.0) == 0.0


def _busy_period(adm: Admission, clock: Clock, seat_time: float, requests: int, together: int = 1) -> None:
    """`requests` requests, `together` at a time, each held `seat_time`."""
    for _ in range(requests // together):
        tickets = [adm.admit(None, 1, 1, 1) for _ in range(together)]
        clock.now += seat_time
        for ticket in tickets:
            adm.release(ticket, 1)


def test_after_an_idle_minute_retry_after_is_when_the_work_in_flight_ends(tmp_path: Path) -> None:
    """Before, the finish rate was averaged over the idle minute: 60 s for work that ends in 1.3 s."""
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.3, requests=20, together=CAPACITY)
    clock.now += 60.0
    for _ in range(CAPACITY):
        adm.admit(None, 1, 1, 1)
    clock.now += 0.1
    wait = refusal(adm).retry_after
    assert wait == pytest.approx(1.2, abs=0.01)  # 1.3 s after the burst began


def test_the_seat_time_is_learnt_as_a_line_over_the_occupancy(tmp_path: Path) -> None:
    """On a CPU four at once each take longer than one alone: the wait for a full engine must say so."""
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.0, requests=20)  # alone: 1 s each
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    with ledger.transaction() as txn:
        alone_only = seat_time_at(txn, CAPACITY)
    # Seen only alone, so no slope yet: the square-root guess, 2x at 4x the occupancy.
    assert alone_only == pytest.approx(2.0, rel=0.01)
    for _ in range(4):  # then full, 2.5 s each
        _busy_period(adm, clock, seat_time=2.5, requests=CAPACITY, together=CAPACITY)
        _busy_period(adm, clock, seat_time=1.0, requests=2)
    with ledger.transaction() as txn:
        full, half = seat_time_at(txn, CAPACITY), seat_time_at(txn, 2)
    assert full == pytest.approx(2.5, rel=0.05)
    assert half == pytest.approx(1.5, rel=0.1)  # on the line through (1, 1 s) and (4, 2.5 s)
    ledger.close()


def test_a_burst_after_idle_is_expected_to_run_as_slow_as_the_last_one_did(tmp_path: Path) -> None:
    """The first batch after an idle spell ran 3 times slower than the occupancy line says: the next
    burst after idle is told so, and the batches after it are not."""
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.0, requests=20, together=CAPACITY)
    clock.now += 60.0
    _busy_period(adm, clock, seat_time=3.0, requests=CAPACITY, together=CAPACITY)  # cold: 3x
    _busy_period(adm, clock, seat_time=1.0, requests=CAPACITY, together=CAPACITY)  # warm again
    clock.now += 60.0
    cold = _fill(adm)
    clock.now += 0.5
    assert refusal(adm).retry_after == pytest.approx(3.0 - 0.5, rel=0.1)
    clock.now += 2.5
    for ticket in cold:
        adm.release(ticket, 1)
    _fill(adm)  # warm: the next batch is expected at the line's time
    assert refusal(adm).retry_after == pytest.approx(1.0, rel=0.1)


def test_after_a_history_of_requests_alone_a_burst_is_expected_to_run_slower(tmp_path: Path) -> None:
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.3, requests=20)
    clock.now += 60.0
    for _ in range(CAPACITY):
        adm.admit(None, 1, 1, 1)
    clock.now += 0.1
    assert refusal(adm).retry_after == pytest.approx(2 * 1.3 - 0.1, abs=0.01)


def _fill(adm: Admission, key: str | None = None) -> list[Ticket]:
    return [adm.admit(key, 1, 1, 1) for _ in range(CAPACITY)]


def test_under_sustained_overload_the_wait_grows_with_the_line(tmp_path: Path) -> None:
    """Before, every refusal said 1 s, however many clients were waiting."""
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=2.0, requests=20, together=CAPACITY)
    for i in range(CAPACITY):  # steady state: one admitted every 0.5 s, each 2 s in flight
        adm.admit(None, 1, 1, 1)
        clock.now += 0.5 if i < CAPACITY - 1 else 0.0
    waits = [refusal(adm, key=f"client{i}").retry_after for i in range(8)]
    assert waits[0] == pytest.approx(0.5)  # the oldest of the four frees first
    assert waits == sorted(waits) and waits[-1] == pytest.approx(4.0)  # 8 in line, 2 rounds of 2 s


def test_a_key_that_waited_as_told_gets_the_seat_before_one_that_hammers(tmp_path: Path) -> None:
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.0, requests=12, together=CAPACITY)
    tickets = _fill(adm)
    wait = refusal(adm, key="patient").retry_after
    assert refusal(adm, key="hammer").retry_after >= wait  # behind the patient one in line
    clock.now += wait  # the patient key's place holds from now on
    retold = refusal(adm, key="patient")  # back when told, but its seat has not freed yet
    adm.release(tickets[0], 1)  # now it does
    hammer_at = clock.now + refusal(adm, key="hammer").retry_after  # kept for the patient key
    refusal(adm)  # nor an anonymous one
    refusal(adm, key="patient")  # nor the patient key itself before its new time: polling must not pay
    clock.now += retold.retry_after
    adm.admit("patient", 1, 1, 1)  # back when told again, and in
    adm.release(tickets[1], 1)
    refusal(adm)  # the hammering key's place holds now: others, anonymous or not, wait
    clock.now = max(clock.now, hammer_at)
    adm.admit("hammer", 1, 1, 1)


def test_seats_that_free_before_a_place_holds_are_not_kept_idle(tmp_path: Path) -> None:
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.0, requests=12, together=CAPACITY)
    tickets = _fill(adm)
    wait = refusal(adm, key="patient").retry_after
    adm.release(tickets[0], 1)
    clock.now += wait / 2
    adm.admit(None, 1, 1, 1)  # the seat freed early, and the patient client is not back yet


def test_a_key_has_one_place_at_a_time_and_polling_it_gains_nothing(tmp_path: Path) -> None:
    """Whether it is the same client polling or another worker of the key cannot be told apart, so
    neither takes a seat before the key's time, not even a free one (else polling would pay)."""
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.0, requests=12, together=CAPACITY)
    tickets = _fill(adm, key="team")
    told = refusal(adm, key="team").retry_after
    clock.now += told / 2
    adm.release(tickets[0], 1)  # a seat frees before the key's time
    again = refusal(adm, key="team")
    assert again.retry_after == pytest.approx(told / 2)  # the same place, the same time
    clock.now += told / 2
    adm.admit("team", 1, 1, 1)


def test_a_key_at_its_concurrency_limit_is_told_when_its_oldest_request_ends(tmp_path: Path) -> None:
    clock = Clock()
    policy = Policy(CAPACITY, 10_000, None, None, 2)
    adm = Admission(Ledger(tmp_path / "ledger.sqlite3"), policy, ServerMetrics(), clock=clock)
    _busy_period(adm, clock, seat_time=3.0, requests=8, together=2)
    adm.admit("k", 1, 1, 1)
    clock.now += 1.0
    adm.admit("k", 1, 1, 1)
    clock.now += 0.5
    wait = refusal(adm, key="k").retry_after
    assert wait == pytest.approx(1.5, abs=0.05)  # the first of its two ends 3 s after it began


def test_anonymous_tokens_hold_only_once_their_owner_came_back_when_told(tmp_path: Path) -> None:
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.0, requests=10)
    tickets = _fill(adm)
    first = refusal(adm)
    assert first.token is not None
    junk = {refusal(adm).token for _ in range(50)}  # a client that ignores the token gets new ones
    assert len(junk) == 50 and first.token not in junk
    early = refusal(adm, token=first.token)  # back too early: the same place, nothing gained
    assert early.token == first.token and early.retry_after == pytest.approx(first.retry_after)
    clock.now += first.retry_after
    checked_in = refusal(adm, token=first.token)  # back when told, nothing free yet: it holds now
    assert checked_in.token == first.token and checked_in.retry_after > 0
    adm.release(tickets[0], 1)
    refusal(adm)  # 50 unclaimed places held nothing; this one is kept for the client that waited
    refusal(adm, token=first.token)  # but even its owner takes it only when told, not by polling
    clock.now += checked_in.retry_after
    adm.admit(None, 1, 1, 1, token=first.token)
    adm.release(tickets[1], 1)
    adm.admit(None, 1, 1, 1)  # its place is used up: the next seat is anyone's


def test_a_place_nobody_claims_is_dropped_after_the_grace(tmp_path: Path) -> None:
    clock = Clock()
    adm = gate(tmp_path, clock)
    _busy_period(adm, clock, seat_time=1.0, requests=10)
    tickets = _fill(adm)
    wait = refusal(adm, key="gone").retry_after
    clock.now += wait
    adm.release(tickets[0], 1)
    refusal(adm)  # held for the key that does not come back...
    clock.now += HOLD_GRACE_S
    adm.admit(None, 1, 1, 1)  # ...for HOLD_GRACE_S at most


def test_front_ends_share_the_line(tmp_path: Path) -> None:
    """Two Admissions on one file, as two front-end processes: a place made on one holds on the other."""
    clock = Clock()
    one, two = gate(tmp_path, clock), gate(tmp_path, clock)
    _busy_period(one, clock, seat_time=1.0, requests=10)
    tickets = _fill(one)
    first = refusal(one)
    clock.now += first.retry_after
    checked_in = refusal(two, token=first.token)
    one.release(tickets[0], 1)
    refusal(one)
    clock.now += checked_in.retry_after
    two.admit(None, 1, 1, 1, token=first.token)
