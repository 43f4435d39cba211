"""The small shared store behind admission and per-key limits: one SQLite file for all front ends.

With `--api-server-count N` the N front-end processes must share one count of work in flight and
one token bucket per key, or each would let in N times the limit. SQLite gives that with nothing to
run: every decision is one short `BEGIN IMMEDIATE` transaction, serialized across processes by the
file lock, a few hundred microseconds per request (not per token). The file lives in a temporary
directory that the server creates and removes; nothing in it must survive a restart, so the
journal is in memory and nothing is synced to disk.

Rows:
- `load(name, value)`: sums, e.g. sequences in flight, prompt tokens not yet prefilled, and
  requests in flight per key (`key:<name>`).
- `buckets(name, level, at)`: token buckets, refilled lazily from the time of the last visit.
- `rates(name, start, count, last)`: events per second over windows of RATE_WINDOW_S, for the
  Retry-After estimates.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RATE_WINDOW_S = 10.0
MIN_RATE_SPAN_S = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS load (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, level REAL NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rates (
    name TEXT PRIMARY KEY, start REAL NOT NULL, count REAL NOT NULL, last REAL
);
"""


class Txn:
    """Reads and writes inside one transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def load(self, name: str) -> float:
        row = self._conn.execute("SELECT value FROM load WHERE name = ?", (name,)).fetchone()
        return float(row[0]) if row else 0.0

    def add_load(self, name: str, delta: float) -> None:
        self._conn.execute(
            "INSERT INTO load (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = MAX(0, value + excluded.value)",
            (name, delta),
        )

    def bucket(self, name: str, capacity: float, per_second: float, now: float) -> float:
        """The bucket's level now: full the first time, refilled since the last visit."""
        row = self._conn.execute("SELECT level, at FROM buckets WHERE name = ?", (name,)).fetchone()
        if row is None:
            return capacity
        level, at = float(row[0]), float(row[1])
        return min(capacity, level + max(0.0, now - at) * per_second)

    def set_bucket(self, name: str, level: float, now: float) -> None:
        self._conn.execute(
            "INSERT INTO buckets (name, level, at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET level = excluded.level, at = excluded.at",
            (name, level, now),
        )

    def count(self, name: str, amount: float, now: float) -> None:
        """Add `amount` events to the rate `name`; a window older than RATE_WINDOW_S is closed."""
        row = self._conn.execute("SELECT start, count FROM rates WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO rates (name, start, count, last) VALUES (?, ?, ?, NULL)", (name, now, amount)
            )
            return
        start, total = float(row[0]), float(row[1])
        if now - start >= RATE_WINDOW_S:
            last = total / (now - start)
            self._conn.execute(
                "UPDATE rates SET start = ?, count = ?, last = ? WHERE name = ?", (now, amount, last, name)
            )
        else:
            self._conn.execute("UPDATE rates SET count = count + ? WHERE name = ?", (amount, name))

    def rate(self, name: str, now: float) -> float | None:
        """Events per second: the open window once it spans MIN_RATE_SPAN_S, else the last closed
        one; None before anything was counted."""
        row = self._conn.execute("SELECT start, count, last FROM rates WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        start, total, last = float(row[0]), float(row[1]), row[2]
        if now - start >= MIN_RATE_SPAN_S and total > 0:
            return total / (now - start)
        return float(last) if last else None


class Ledger:
    """One connection per process to the shared file at `path` (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = MEMORY")
        self._conn.execute("PRAGMA synchronous = OFF")
        for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
            with self.transaction():
                self._conn.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield Txn(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()
