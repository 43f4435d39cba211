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
- `flights(id, sequences, since, sequence_seconds, key, cold)`: each admitted request until it
  ends, with its admission time, the sequences in flight integrated over time until then (so that
  its release knows the mean occupancy it ran at), its API key, and whether it started on an engine
  that had been idle (such requests run slower): the seats that will free next are those of the
  oldest (server/admission/seats.py).
- `means(name, value)`: running means (exponentially weighted) of how long a sequence holds its
  seat (with the occupancy it ran at, to learn how a fuller engine slows each request) and how long
  a prompt waits to be prefilled. Measured per request, so idle time between requests does not
  dilute them (a rate over wall time did: after an idle minute Retry-After said 60 s while the
  work in flight ended in about a second).
- `reservations(owner, place, sequences, due, expires, holds_from)`: places in line that a 429 gave
  out, first come first served by `place` (server/admission/seats.py says who holds what).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Weight of the newest observation in a running mean: about the last ten requests count.
MEAN_WEIGHT = 0.1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS load (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, level REAL NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS flights (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sequences INTEGER NOT NULL, since REAL NOT NULL,
    sequence_seconds REAL NOT NULL, key TEXT, cold INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS flights_key ON flights (key);
CREATE INDEX IF NOT EXISTS flights_since ON flights (since);
CREATE TABLE IF NOT EXISTS means (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
    owner TEXT PRIMARY KEY, place INTEGER NOT NULL, sequences INTEGER NOT NULL, due REAL NOT NULL,
    expires REAL NOT NULL, holds_from REAL
);
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A place in line for `sequences` seats. From `holds_from` (None: not yet) until `expires`,
    freed seats are kept for it; `due` is when its owner was told to come back. A lower `place`
    was refused first, and is served first."""

    owner: str
    place: int
    sequences: int
    due: float
    expires: float
    holds_from: float | None


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

    def open_flight(
        self, sequences: int, now: float, sequence_seconds: float, key: str | None, cold: bool
    ) -> int:
        cursor = self._conn.execute(
            "INSERT INTO flights (sequences, since, sequence_seconds, key, cold) VALUES (?, ?, ?, ?, ?)",
            (sequences, now, sequence_seconds, key, int(cold)),
        )
        return int(cursor.lastrowid or 0)

    def close_flight(self, flight: int) -> tuple[float, float, bool] | None:
        """Removes the flight; returns when it was admitted, the sequence-seconds then, and whether
        it was cold (None if it was not there)."""
        row = self._conn.execute(
            "SELECT since, sequence_seconds, cold FROM flights WHERE id = ?", (flight,)
        ).fetchone()
        self._conn.execute("DELETE FROM flights WHERE id = ?", (flight,))
        return (float(row[0]), float(row[1]), bool(row[2])) if row else None

    def flights(self, key: str | None = None) -> list[tuple[float, int, bool]]:
        """(admitted at, sequences, cold) of every request in flight (of API key `key` if given),
        oldest first."""
        if key is None:
            rows = self._conn.execute("SELECT since, sequences, cold FROM flights ORDER BY since").fetchall()
        else:
            rows = self._conn.execute(
                "SELECT since, sequences, cold FROM flights WHERE key = ? ORDER BY since", (key,)
            ).fetchall()
        return [(float(since), int(n), bool(cold)) for since, n, cold in rows]

    def mean(self, name: str) -> float | None:
        row = self._conn.execute("SELECT value FROM means WHERE name = ?", (name,)).fetchone()
        return float(row[0]) if row else None

    def observe(self, name: str, value: float, weight: float = MEAN_WEIGHT) -> None:
        """Fold `value` into the running mean `name` (the first value is taken as it is)."""
        self._conn.execute(
            "INSERT INTO means (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + ? * (excluded.value - value)",
            (name, value, weight),
        )

    def reservation(self, owner: str) -> Reservation | None:
        row = self._conn.execute(
            "SELECT owner, place, sequences, due, expires, holds_from FROM reservations WHERE owner = ?",
            (owner,),
        ).fetchone()
        return Reservation(*row) if row else None

    def next_place(self) -> int:
        row = self._conn.execute("SELECT COALESCE(MAX(place), 0) + 1 FROM reservations").fetchone()
        return int(row[0])

    def put_reservation(self, r: Reservation) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO reservations (owner, place, sequences, due, expires, holds_from) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (r.owner, r.place, r.sequences, r.due, r.expires, r.holds_from),
        )

    def drop_reservation(self, owner: str) -> None:
        self._conn.execute("DELETE FROM reservations WHERE owner = ?", (owner,))

    def expire_reservations(self, now: float) -> None:
        self._conn.execute("DELETE FROM reservations WHERE expires <= ?", (now,))

    def reserved(self, now: float, *, before: int | None, holding: bool) -> int:
        """Seats of the places ahead of `before` (None: of all) that hold now (`holding`), or that
        hold or will (a time to hold from is set, though maybe later)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(sequences), 0) FROM reservations "
            "WHERE holds_from IS NOT NULL AND holds_from <= ? AND place < ?",
            (now if holding else float("inf"), before if before is not None else 1 << 62),
        ).fetchone()
        return int(row[0])


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
