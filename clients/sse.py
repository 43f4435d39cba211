"""Server-sent events as OpenAI streams them: `data: {json}` lines, ending with `data: [DONE]`.

Comments (pings) and other fields are skipped. An `{"error": ...}` event, which servers send when
generation fails mid-stream, is raised as APIError rather than handed on as a chunk.

Lines end where the SSE format says they do (WHATWG HTML, "Server-sent events"): at CR, LF or CRLF
and nowhere else. Generic text line readers (httpx's `iter_lines`, `str.splitlines`) also break at
U+2028, U+2029, U+0085 and other separators, which JSON strings carry unescaped, and so cut one
event's JSON in two. The body is therefore read as bytes and split here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from clients.errors import APIError

DONE = "[DONE]"
_LINE_END = re.compile(rb"\r\n|\r|\n")


class LineDecoder:
    """Bytes in, in chunks cut anywhere, complete lines out. No UTF-8 decoder state is kept: CR and
    LF never occur inside a multi-byte UTF-8 sequence, so a line is decoded once it is whole.

    A CR ends its line at once (a stream may pause after it); an LF that starts the next chunk is
    then the second half of that CRLF, not an empty line. A last line without its end is dropped
    at the end of the stream, as the SSE format says (it is an event cut short)."""

    def __init__(self) -> None:
        self._pending = b""
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[str]:
        if not chunk:
            return []
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        data = self._pending + chunk
        lines: list[str] = []
        start = 0
        self._after_cr = False
        for end in _LINE_END.finditer(data):
            lines.append(data[start : end.start()].decode("utf-8", "replace"))
            start = end.end()
            self._after_cr = end.group() == b"\r" and start == len(data)
        self._pending = data[start:]
        return lines


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
        # Only ASCII blanks are trimmed: str.strip() would also take U+2028 and its kin, which are
        # text, not framing.
        payload = line[5:].strip(" \t")
        if payload == DONE:
            self.done = True
            return None
        if not payload:
            return None
        event: dict[str, Any] = json.loads(payload)
        if "error" in event and "choices" not in event:
            raise APIError.from_body(None, event)
        return event


def iter_events(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The events of a whole stream, given as the body's byte chunks, up to [DONE]."""
    lines = LineDecoder()
    stream = EventStream()
    for chunk in chunks:
        for line in lines.feed(chunk):
            event = stream.feed(line)
            if stream.done:
                return
            if event is not None:
                yield event
