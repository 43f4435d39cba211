"""The response store without an engine: two connections to one file (two front ends), owners, and
the cursor pages of input items."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.store.responses import ResponseStore, page_items


def test_a_response_stored_by_one_front_end_is_seen_by_another(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "responses.sqlite3"
    one, other = ResponseStore(path), ResponseStore(path)
    try:
        one.put("alice", {"id": "resp_1", "output": []}, [{"id": "msg_1"}])
        found = other.get("alice", "resp_1")
        assert found is not None and found.items == [{"id": "msg_1"}]
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.delete("alice", "resp_1") and one.get("alice", "resp_1") is None
    finally:
        one.close()
        other.close()


def test_only_the_owner_reads_or_deletes_and_anonymous_is_an_owner_of_its_own(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "responses.sqlite3")
    try:
        store.put(None, {"id": "resp_anon"}, [])
        store.put("alice", {"id": "resp_alice"}, [])
        assert store.get("alice", "resp_anon") is None and store.get(None, "resp_alice") is None
        assert store.get("bob", "resp_alice") is None and not store.delete("bob", "resp_alice")
        assert store.get(None, "resp_anon") is not None and store.get("alice", "resp_alice") is not None
    finally:
        store.close()


def test_pages_follow_order_and_after() -> None:
    items = [{"id": f"i{n}"} for n in range(5)]
    page = page_items(items, limit=2, order="desc", after=None)
    assert page is not None and [i["id"] for i in page.items] == ["i4", "i3"] and page.has_more
    page = page_items(items, limit=2, order="asc", after="i2")
    assert page is not None and [i["id"] for i in page.items] == ["i3", "i4"] and not page.has_more
    assert page_items(items, limit=2, order="asc", after="nope") is None
