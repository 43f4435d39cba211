"""Server-sent events as OpenAI streams them: `data: {json}` lines, ending with `data: [DONE]`.

Comments (pings) and other fields are skipped. An `{"error": ...}` event, which servers send when
generation fails mid-stream, is raised as APIError rather than handed on as a chunk.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from clients.errors import APIError

DONE = "[DONE]"


def parse_line(line: str) -> dict[str, Any] | None:
    """The JSON of one `data:` line; None for anything else. Raises StopIteration at [DONE]."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == DONE:
        raise StopIteration
    if not payload:
        return None
    event: dict[str, Any] = json.loads(payload)
    if "error" in event and "choices" not in event:
        raise APIError.from_body(None, event)
    return event


def iter_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            event = parse_line(line)
        except StopIteration:
            return
        if event is not None:
            yield event


async def aiter_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    async for line in lines:
        try:
            event = parse_line(line)
        except StopIteration:
            return
        if event is not None:
            yield event
