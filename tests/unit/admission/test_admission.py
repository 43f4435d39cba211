"""Admission and per-key limits on the shared ledger (no engine: the arithmetic and the sharing)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from server.admission.gate import Admission, Policy
from server.admission.ledger import Ledger
from server.errors import InvalidRequestError, RateLimitError
from server.observability.metrics import ServerMetrics


def policy(**overrides: int | None) -> Policy:
    values: dict[str, int | None] = {
        "max_in_flight": 100,
        "max_queued_prompt_tokens": 10_000,
        "key_requests_per_minute": None,
        "key_tokens_per_minute": None,
        "key_max_concurrent": None,
    }
    values.update(overrides)
    return Policy(**values)  # type: ignore[arg-type]


def admission(tmp_path: Path, **overrides: int | None) -> Admission:
    return Admission(Ledger(tmp_path / "ledger.sqlite3"), policy(**overrides), ServerMetrics())


def test_in_flight_cap_refuses_whole_requests_and_counts_return_to_zero(tmp_path: Path) -> None:
    adm = admission(tmp_path, max_in_flight=4)
    first = adm.admit(None, 3, prompt_tokens=10, max_new_tokens=5)
    with pytest.raises(RateLimitError) as refused:
        adm.admit(None, 2, prompt_tokens=10, max_new_tokens=5)  # 3 + 2 > 4: nothing of it is taken
    assert refused.value.code == "server_overloaded"
    assert 0 < refused.value.retry_after <= 60
    second = adm.admit(None, 1, prompt_tokens=10, max_new_tokens=5)
    assert adm.in_flight() == (4, 20)
    adm.started(first)
    assert adm.in_flight() == (4, 10)
    adm.release(first, 5)
    adm.release(second, 0)  # never started: its prompt leaves the queue too
    adm.release(second, 0)  # a second release changes nothing
    assert adm.in_flight() == (0, 0)


def test_queued_prompt_tokens_cap(tmp_path: Path) -> None:
    adm = admission(tmp_path, max_queued_prompt_tokens=100)
    adm.admit(None, 1, prompt_tokens=80, max_new_tokens=1)
    with pytest.raises(RateLimitError) as refused:
        adm.admit(None, 1, prompt_tokens=30, max_new_tokens=1)
    assert refused.value.code == "queue_full"


def test_request_and_token_buckets_per_key_with_refund(tmp_path: Path) -> None:
    adm = admission(tmp_path, key_requests_per_minute=3, key_tokens_per_minute=600)
    t1 = adm.admit("alice", 1, prompt_tokens=100, max_new_tokens=400)  # holds 500 of 600
    with pytest.raises(RateLimitError) as refused:
        adm.admit("alice", 1, prompt_tokens=100, max_new_tokens=100)
    assert refused.value.code == "tokens_per_minute_exceeded"
    assert 9.9 <= refused.value.retry_after <= 10.0  # 100 missing tokens, refilled at 10 a second
    adm.admit("bob", 1, prompt_tokens=100, max_new_tokens=400)  # another key, another bucket
    adm.release(t1, completion_tokens=20)  # 380 unused tokens come back
    adm.admit("alice", 1, prompt_tokens=100, max_new_tokens=100)
    adm.admit("alice", 1, prompt_tokens=1, max_new_tokens=1)
    with pytest.raises(RateLimitError) as refused:
        adm.admit("alice", 1, prompt_tokens=1, max_new_tokens=1)  # the 4th request in the minute
    assert refused.value.code == "requests_per_minute_exceeded"


def test_a_request_larger_than_the_key_may_ever_use_is_a_400(tmp_path: Path) -> None:
    adm = admission(tmp_path, key_tokens_per_minute=100)
    with pytest.raises(InvalidRequestError):
        adm.admit("alice", 1, prompt_tokens=50, max_new_tokens=60)


def test_concurrent_requests_per_key(tmp_path: Path) -> None:
    adm = admission(tmp_path, key_max_concurrent=2)
    a, _ = adm.admit("alice", 1, 1, 1), adm.admit("alice", 1, 1, 1)
    with pytest.raises(RateLimitError) as refused:
        adm.admit("alice", 1, 1, 1)
    assert refused.value.code == "concurrency_limit_exceeded"
    adm.release(a, 1)
    adm.admit("alice", 1, 1, 1)


def _admit_many(path: str, tries: int, admitted: multiprocessing.Queue[int]) -> None:
    adm = Admission(Ledger(Path(path)), policy(max_in_flight=30), ServerMetrics())
    count = 0
    for _ in range(tries):
        try:
            adm.admit(None, 1, 1, 1)
            count += 1
        except RateLimitError:
            pass
    admitted.put(count)


def test_front_end_processes_share_one_cap(tmp_path: Path) -> None:
    """Four processes (as with --api-server-count 4) race 50 admissions each against a cap of 30."""
    ctx = multiprocessing.get_context("spawn")
    admitted: multiprocessing.Queue[int] = ctx.Queue()
    path = str(tmp_path / "shared.sqlite3")
    Ledger(Path(path)).close()
    procs = [ctx.Process(target=_admit_many, args=(path, 50, admitted)) for _ in range(4)]
    for p in procs:
        p.start()
    counts = [admitted.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(counts) == 30
