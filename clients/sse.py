"""Server-sent events as OpenAI streams them: `data: {json}` lines, ending with `data: [DONE]`.

Comments (pings) and other fields are skipped. An `{"error": ...}` event, which servers send when
generation fails mid-stream, is raised as APIError rather than handed on as a chunk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from clients.errors import APIError

DONE = "[DONE]"


class EventStream:
    """Lines in, events out, with no I/O, so that the sync and the async client read a stream alike.

    After [DONE] every line is ignored: the client still reads the body to its end (so the
    connection goes back to the pool) without anything more reaching the caller."""

    def __init__(self) -> None:
        self.done = False

    def feed(self, line: str) -> dict[str, Any] | None:
        """The JSON of one `data:` line; None for any other line, and for all lines from [DONE] on."""
        if self.done or not line.startswith("data:"):
            return None
        payload = line[5:].strip()
        if payload == DONE:
            self.done = True
            return None
        if not payload:
            return None
        event: dict[str, Any] = json.loads(payload)
        if "error" in event and "choices" not in event:
            raise APIError.from_body(None, event)
        return event


def iter_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The events of a whole stream of lines, up to [DONE]."""
    stream = EventStream()
    for line in lines:
        event = stream.feed(line)
        if stream.done:
            return
        if event is not None:
            yield event
