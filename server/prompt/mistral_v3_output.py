"""The tool calls in a v3 model's output: `[TOOL_CALLS]` followed by a JSON list of
`{"name": ..., "arguments": {...}}`, as Mistral-7B-Instruct-v0.3 and Mixtral-8x22B-Instruct answer
when they call tools.

The marker is a special token, so it is in the output text only when the engine renders special
tokens (`skip_special_tokens` false); `parse_v3_ids` finds it by id in the token ids instead.

What counts as a call is decided by one rule, the same whole or streamed: after the marker, the
first JSON value (found by bracket matching, strings and escapes respected) must be a list of
objects (or one object) each with a string `name` and object `arguments`; then those are calls.
Anything else after the marker (a truncated list, invalid JSON, objects without a name) is text,
the marker left out, as it would be without tools. Text around call lists is content; whitespace
that only separates a list from the end or from another marker is dropped.

Call ids are new, 9 random letters and digits: the client sends them back in the history, where
the v3 format writes them and mistral-common accepts no other shape (an OpenAI-style `call_...`
id would make the next turn impossible to encode). The model's own "id", if it writes one, is not
used: ids must be unique per response, which a model cannot promise.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.prompt.mistral_v3 import TOOL_CALLS, v3_tokens
from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import ToolCall

_ID_ALPHABET = string.ascii_letters + string.digits


def new_call_id() -> str:
    """A v3 call id: 9 letters or digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


@dataclass(frozen=True, slots=True)
class OutputDelta:
    """What one piece of output adds: text for `content`, and calls now complete."""

    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


class V3OutputParser:
    """Incremental: `feed` each text delta as it comes, then `finish` once. The deltas' content adds
    up to `parse_v3_output`'s content, and their calls to its calls, wherever the text is cut.
    Content is held back only while it could still be the start of the marker or leading
    whitespace; a call list is handed out whole once its closing bracket arrives."""

    def __init__(self, new_id: Callable[[], str] = new_call_id, marker: str = TOOL_CALLS) -> None:
        self._new_id = new_id
        self._marker = marker
        self._text = ""  # text mode: held back (a possible marker start, or leading whitespace)
        self._json: str | None = None  # after a marker: the JSON seen so far; None in text mode
        self._scan = _Scanner()
        self._made_calls = False
        self._content_started = False  # non-whitespace content since the start or the last list

    def feed(self, text: str) -> OutputDelta:
        content: list[str] = []
        calls: list[ToolCall] = []
        pending = text
        while pending:
            if self._json is None:
                pending = self._feed_text(pending, content)
            else:
                pending = self._feed_json(pending, content, calls)
        return OutputDelta("".join(content), tuple(calls))

    def finish(self) -> OutputDelta:
        """The end of the output: a call list left open is text; so is a marker's partial spelling."""
        if self._json is not None:
            tail, self._json = self._json, None
            return OutputDelta(self._content(tail))
        held, self._text = self._text, ""
        if self._made_calls and not self._content_started and not held.strip():
            return OutputDelta()  # only whitespace after the last call list
        return OutputDelta(held)

    def _feed_text(self, text: str, content: list[str]) -> str:
        """Content up to a marker; returns what follows the marker (empty: all consumed)."""
        buffer = self._text + text
        at = buffer.find(self._marker)
        if at >= 0:
            before = buffer[:at]
            if before.strip() or self._content_started:
                content.append(self._content(before))
            self._text, self._json = "", ""
            self._scan = _Scanner()
            return buffer[at + len(self._marker) :]
        keep = _marker_prefix_length(buffer, self._marker)
        emit, self._text = buffer[: len(buffer) - keep], buffer[len(buffer) - keep :]
        if not self._content_started and not emit.strip():
            self._text = emit + self._text  # leading whitespace: kept until text or a marker follows
        elif emit:
            content.append(self._content(emit))
        return ""

    def _feed_json(self, text: str, content: list[str], calls: list[ToolCall]) -> str:
        """JSON after a marker; returns the text after its value ends (empty: not ended yet)."""
        start = len(self._json or "")
        self._json = (self._json or "") + text
        end = self._scan.advance(self._json, start)
        if end is None:
            return ""
        value, rest = self._json[:end], self._json[end:]
        self._json = None
        made = _calls(value, self._new_id)
        if made is None:
            content.append(self._content(value))
        else:
            calls += made
            self._made_calls, self._content_started = True, False
        return rest

    def _content(self, text: str) -> str:
        if text.strip():
            self._content_started = True
        return text


def parse_v3_output(
    text: str, new_id: Callable[[], str] = new_call_id, marker: str = TOOL_CALLS
) -> tuple[str, list[ToolCall]]:
    """(content, calls) of a whole output text in which the marker is spelled out."""
    parser = V3OutputParser(new_id, marker)
    fed, last = parser.feed(text), parser.finish()
    return fed.content + last.content, [*fed.tool_calls, *last.tool_calls]


def parse_v3_ids(
    ids: list[int], tokenizer: Tokenizer, new_id: Callable[[], str] = new_call_id
) -> tuple[str, list[ToolCall]]:
    """(content, calls) of whole output token ids: the marker is found by its id, so this works
    whatever the engine did with special tokens in the text, and text that merely spells it is
    text."""
    marks = v3_tokens(tokenizer)
    if marks is None:
        return tokenizer.decode(ids), []
    pieces: list[list[int]] = [[]]
    for token in ids:
        if token == marks.tool_calls:
            pieces.append([])
        else:
            pieces[-1].append(token)
    marker = f"\ue000{secrets.token_hex(8)}\ue001"  # stands for the token; no output spells it
    return parse_v3_output(marker.join(tokenizer.decode(p) for p in pieces), new_id, marker)


def _marker_prefix_length(text: str, marker: str) -> int:
    """Length of the longest end of `text` that begins the marker (could complete it later)."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


class _Scanner:
    """Finds where the first JSON array or object of a text ends, one chunk at a time."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def advance(self, text: str, start: int) -> int | None:
        """The index just past the value's end, or None while it is open. A first non-space
        character that opens no array or object ends the "value" right there: it is text."""
        for i in range(start, len(text)):
            char = text[i]
            if self.depth == 0:
                if char.isspace():
                    continue
                if char not in "[{":
                    return i + 1
            if self._step(char):
                return i + 1
        return None

    def _step(self, char: str) -> bool:
        """True when `char` closes the outermost bracket."""
        if self.in_string:
            if self.escaped:
                self.escaped = False
            elif char == "\\":
                self.escaped = True
            elif char == '"':
                self.in_string = False
            return False
        if char == '"':
            self.in_string = True
        elif char in "[{":
            self.depth += 1
        elif char in "]}":
            self.depth -= 1
            return self.depth == 0
        return False


def _calls(value: str, new_id: Callable[[], str]) -> list[ToolCall] | None:
    """The calls `value` lists, or None when it is not a list of calls."""
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        return None
    items = parsed if isinstance(parsed, list) else [parsed]
    calls: list[ToolCall] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            return None
        arguments = item.get("arguments", {})
        if isinstance(arguments, str):  # some fine-tunes write the arguments as JSON text
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                return None
        if not isinstance(arguments, dict):
            return None
        calls.append(ToolCall(new_id(), item["name"], json.dumps(arguments, ensure_ascii=False)))
    return calls or None
