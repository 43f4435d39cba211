"""Per-key usage on one host: a SQLite file kept across restarts (unlike the admission ledger).

One row per key and UTC day: requests, prompt tokens, completion tokens. Front ends of one server
share the file (WAL mode, one short transaction per ended request).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.admission.key_limits import DayUsage, last_days

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, day TEXT NOT NULL, requests INTEGER NOT NULL, "
    "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, PRIMARY KEY (key, day))"
)


class UsageBook:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(_SCHEMA)

    def record(self, key: str, day: str, prompt_tokens: int, completion_tokens: int) -> None:
        self._conn.execute(
            "INSERT INTO usage (key, day, requests, prompt_tokens, completion_tokens) VALUES (?, ?, 1, ?, ?) "
            "ON CONFLICT(key, day) DO UPDATE SET requests = requests + 1, "
            "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
            "completion_tokens = completion_tokens + excluded.completion_tokens",
            (key, day, prompt_tokens, completion_tokens),
        )

    def tokens(self, key: str, prefix: str) -> int:
        """Prompt plus completion tokens of the days starting with `prefix` (a day, or a month)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage "
            "WHERE key = ? AND day LIKE ? || '%'",
            (key, prefix),
        ).fetchone()
        return int(row[0])

    def days(self, key: str, days: int, now: float) -> list[DayUsage]:
        wanted = last_days(days, now)
        rows = self._conn.execute(
            "SELECT day, requests, prompt_tokens, completion_tokens FROM usage WHERE key = ? AND day >= ?",
            (key, wanted[0]),
        ).fetchall()
        found = {day: DayUsage(day, int(r), int(p), int(c)) for day, r, p, c in rows}
        return [found.get(day, DayUsage(day, 0, 0, 0)) for day in wanted]

    def close(self) -> None:
        self._conn.close()
