"""Per-key limits on one host: token buckets and requests at once in the admission ledger, usage and
quotas in a usage file kept across restarts (server/admission/usage.py).

The gate calls `take_in` inside its own ledger transaction, after the seats: one transaction for the
whole decision, as before limits could be shared. The async `KeyLimits` methods, each its own
transaction, serve callers that hold none (the usage route, tests of the interface).
"""

from __future__ import annotations

from server.admission.key_limits import (
    ConcurrencyWait,
    DayUsage,
    KeyPolicy,
    KeyShare,
    bucket_refusal,
    check_size,
    concurrency_refusal,
    quota_refusal,
    utc_day,
    utc_month,
)
from server.admission.ledger import Ledger, Txn
from server.admission.seats import SEQUENCES, clamp_wait, expected_flights, seat_time_at, seat_wait
from server.admission.usage import UsageBook


def _concurrency_key(key: str) -> str:
    return f"key:{key}"


class EmbeddedKeyLimits:
    """`usage`: None keeps no usage (and no quota can hold)."""

    def __init__(self, ledger: Ledger, usage: UsageBook | None) -> None:
        self._ledger = ledger
        self._usage = usage

    def take_in(self, txn: Txn, key: str, policy: KeyPolicy, held_tokens: int, now: float) -> None:
        """Take the request's share inside `txn`, or raise (the caller rolls back)."""
        check_size(key, policy, held_tokens)
        self._check_quotas(key, policy, now)
        limit = policy.max_concurrent
        if limit is not None and txn.load(_concurrency_key(key)) + 1 > limit:
            seat_time = seat_time_at(txn, txn.load(SEQUENCES))
            wait = clamp_wait(seat_wait(expected_flights(txn, seat_time, key), 1, now, seat_time))
            raise concurrency_refusal(key, limit, wait)
        taken: list[tuple[str, float]] = []
        for kind, per_minute, cost in (
            ("requests", policy.requests_per_minute, 1.0),
            ("tokens", policy.tokens_per_minute, float(held_tokens)),
        ):
            if per_minute is None:
                continue
            name = f"{kind}:{key}"
            level = txn.bucket(name, per_minute, per_minute / 60.0, now)
            if level < cost:
                raise bucket_refusal(key, kind, per_minute, clamp_wait((cost - level) / (per_minute / 60.0)))
            taken.append((name, level - cost))
        for name, level in taken:
            txn.set_bucket(name, level, now)
        txn.add_load(_concurrency_key(key), 1)

    def _check_quotas(self, key: str, policy: KeyPolicy, now: float) -> None:
        if self._usage is None:
            return
        for period, limit, prefix in (
            ("day", policy.tokens_per_day, utc_day(now)),
            ("month", policy.tokens_per_month, utc_month(now)),
        ):
            if limit is not None and self._usage.tokens(key, prefix) >= limit:
                raise quota_refusal(key, period, limit, now)

    def give_back_in(
        self, txn: Txn, share: KeyShare, unused_tokens: int, now: float, *, served: bool
    ) -> None:
        """The request ended (`served`) or never ran: its place and unused tokens come back."""
        txn.add_load(_concurrency_key(share.key), -1)
        refunds = [("tokens", share.policy.tokens_per_minute, unused_tokens)]
        if not served:
            refunds.append(("requests", share.policy.requests_per_minute, 1))
        for kind, per_minute, amount in refunds:
            if per_minute is None or amount <= 0:
                continue
            name = f"{kind}:{share.key}"
            level = txn.bucket(name, per_minute, per_minute / 60.0, now)
            txn.set_bucket(name, min(float(per_minute), level + amount), now)

    def record(self, key: str, prompt_tokens: int, completion_tokens: int, now: float) -> None:
        if self._usage is not None:
            self._usage.record(key, utc_day(now), prompt_tokens, completion_tokens)

    async def take(
        self,
        key: str,
        policy: KeyPolicy,
        held_tokens: int,
        now: float,
        wait: ConcurrencyWait,  # noqa: ARG002 (the ledger's own flights give the wait)
    ) -> KeyShare:
        with self._ledger.transaction() as txn:
            self.take_in(txn, key, policy, held_tokens, now)
        return KeyShare(key, policy, held_tokens)

    async def give_back(
        self, share: KeyShare, prompt_tokens: int, completion_tokens: int, now: float, *, served: bool
    ) -> None:
        unused = share.held_tokens - prompt_tokens - completion_tokens if served else share.held_tokens
        with self._ledger.transaction() as txn:
            self.give_back_in(txn, share, max(0, unused), now, served=served)
        if served:
            self.record(share.key, prompt_tokens, completion_tokens, now)

    async def usage(self, key: str, days: int, now: float) -> list[DayUsage]:
        if self._usage is None:
            return []
        return self._usage.days(key, days, now)

    async def close(self) -> None:
        if self._usage is not None:
            self._usage.close()
