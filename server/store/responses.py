"""Stored responses of the Responses API (`store: true`): one SQLite file that every front end opens.

A response is kept with the items it was generated from (its input, after any earlier turns that
`previous_response_id` brought in), so that continuing a conversation or listing its input items is
one lookup whatever the length of the chain, and deleting a response leaves the later ones whole.

Why SQLite in WAL mode: with `--api-server-count N` a client's next turn may reach another front-end
process than the one that answered it; all of them must see every stored response. WAL lets readers
go on while one process writes, and nothing has to run beside the server. Unlike the admission
ledger, this file is meant to outlive a restart, so it lives in the cache directory (or where
`--responses-store-path` says) and is synced as SQLite's WAL mode syncs by default.

Every row carries its owner: the name of the API key that created it, or NULL for a server without
keys. Every read and delete matches the owner as well as the id, so one key cannot tell another
key's responses from ids that never existed (the route answers 404 for both).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT,
    created_at REAL NOT NULL,
    body TEXT NOT NULL,
    items TEXT NOT NULL
);
"""

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored response's body (the Response object) and the items it was generated from, each
    item a dict with an `id`."""

    body: dict[str, Any]
    items: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ItemPage:
    items: list[dict[str, Any]]
    has_more: bool


class ResponseStore:
    """One connection per process to the file at `path` (created with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._conn.execute(_SCHEMA)

    def put(self, owner: str | None, body: dict[str, Any], items: list[dict[str, Any]]) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO responses (id, owner, created_at, body, items) VALUES (?, ?, ?, ?, ?)",
            (body["id"], owner, time.time(), json.dumps(body), json.dumps(items)),
        )

    def get(self, owner: str | None, response_id: str) -> Stored | None:
        """None when there is no such response, or it belongs to another owner."""
        row = self._conn.execute(
            "SELECT body, items FROM responses WHERE id = ? AND owner IS ?", (response_id, owner)
        ).fetchone()
        return None if row is None else Stored(json.loads(row[0]), json.loads(row[1]))

    def delete(self, owner: str | None, response_id: str) -> bool:
        """Whether the owner had that response (it is gone now)."""
        cursor = self._conn.execute("DELETE FROM responses WHERE id = ? AND owner IS ?", (response_id, owner))
        return cursor.rowcount > 0

    def close(self) -> None:
        self._conn.close()


def page_items(
    items: list[dict[str, Any]], *, limit: int, order: Order, after: str | None
) -> ItemPage | None:
    """The cursor page OpenAI's list endpoints return: `limit` items in `order` (asc: as the model
    read them), starting after the item `after`. None: `after` names no item of the list."""
    ordered = items if order == "asc" else items[::-1]
    start = 0
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            return None
        start = ids.index(after) + 1
    chosen = ordered[start : start + limit]
    return ItemPage(chosen, start + limit < len(ordered))
