"""The model's answer split into text and tool calls, as it streams.

Both prompt formats have the model write its calls as one JSON list after a marker:

    optional text[TOOL_CALLS] [{"name": "f", "arguments": {...}}, ...]

(with tool_choice "required" or a named function, the grammar makes the whole answer the list, with
no marker). `CallScanner` reads the answer a piece at a time and says what is text and what belongs
to which call: each call's name as soon as its string closes, its arguments as they come, so a
stream can pass them on as OpenAI streams calls. Text that may be the start of the marker is held
back until the next piece shows whether it is. The arguments of a call are the model's own JSON
text, so a streamed answer and a whole one carry the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from server.prompt.tools import Tool


@dataclass(slots=True)
class CallPiece:
    """Part of call `index`: its name on the first piece (None after), then argument text."""

    index: int
    name: str | None
    arguments: str


@dataclass(slots=True)
class _Item:
    name: str | None = None
    name_sent: bool = False
    arguments: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # argument text that came before the name
    quoted: bool = False  # arguments sent as a JSON string holding the object, decoded at the end


class CallScanner:
    """`marker`: what starts the calls; None: the answer is the calls' JSON from its first character."""

    def __init__(self, marker: str | None) -> None:
        self._marker = marker
        self._held = ""  # text that may be the start of the marker
        self.content: list[str] = []
        self.in_calls = marker is None
        self._json: list[str] = []
        self._items: list[_Item] = []
        self._depth = 0
        self._in_str = self._escape = False
        self._expect = ""  # at an item's top level: "key", "value", "in_value"
        self._key: list[str] = []
        self._key_on = self._name_on = self._args_on = False
        self._name: list[str] = []
        self._out: list[CallPiece] = []

    def feed(self, text: str) -> tuple[str, list[CallPiece]]:
        """The text to show and the call pieces that `text` completes."""
        if self.in_calls:
            return "", self._scan(text)
        assert self._marker is not None
        pending = self._held + text
        at = pending.find(self._marker)
        if at >= 0:
            self._held, self.in_calls = "", True
            self.content.append(pending[:at])
            return pending[:at], self._scan(pending[at + len(self._marker) :])
        keep = next(
            (
                n
                for n in range(min(len(self._marker) - 1, len(pending)), 0, -1)
                if self._marker.startswith(pending[-n:])
            ),
            0,
        )
        shown, self._held = pending[: len(pending) - keep], pending[len(pending) - keep :]
        self.content.append(shown)
        return shown, []

    def finish(self) -> str:
        """Text held back at the end: it was not the marker after all."""
        rest, self._held = self._held, ""
        self.content.append(rest)
        return rest

    def calls(self, tools: list[Tool] | None = None) -> list[tuple[str, str]] | None:
        """Every call as (name, arguments JSON), or None when the calls' JSON is not a complete list
        of {"name", "arguments"} objects (cut off by max_tokens, say) or names a tool not offered."""
        try:
            parsed: Any = json.loads("".join(self._json))
        except ValueError:
            return None
        known = None if tools is None else {t.name for t in tools}
        if not isinstance(parsed, list) or len(parsed) != len(self._items) or not parsed:
            return None
        calls: list[tuple[str, str]] = []
        for value, item in zip(parsed, self._items, strict=True):
            if not isinstance(value, dict) or not isinstance(value.get("name"), str):
                return None
            arguments = value.get("arguments", {})
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    return None
            if not isinstance(arguments, dict) or (known is not None and value["name"] not in known):
                return None
            text = "".join(item.arguments).strip()
            calls.append((value["name"], text if text and not item.quoted else json.dumps(arguments)))
        return calls

    def _scan(self, text: str) -> list[CallPiece]:
        for ch in text:
            self._json.append(ch)
            self._char(ch)
        out, self._out = self._out, []
        return out

    def _char(self, ch: str) -> None:
        if self._in_str:
            self._string_char(ch)
            return
        top = self._depth == 2
        if top and self._expect == "value" and not ch.isspace():
            self._value_starts(ch)
        if top and self._expect == "in_value" and ch in ",}":
            self._args_on = self._name_on = False
            self._expect = "key"
        else:
            self._collect(ch)
        if ch == '"':
            self._string_opens(top)
        elif ch in "[{":
            self._depth += 1
            if self._depth == 2 and ch == "{":
                self._items.append(_Item())
                self._expect = "key"
        elif ch in "]}":
            self._depth -= 1
            if self._depth == 1 and ch == "}":
                self._item_done()
        elif ch == ":" and top and self._expect == "key":
            self._expect = "value"

    def _string_opens(self, top: bool) -> None:
        self._in_str = True
        self._key_on = top and self._expect == "key"
        if self._key_on:
            self._key = ['"']

    def _string_char(self, ch: str) -> None:
        self._collect(ch)
        if self._escape:
            self._escape = False
        elif ch == "\\":
            self._escape = True
        elif ch == '"':
            self._in_str = False
            self._string_closed()

    def _value_starts(self, ch: str) -> None:
        """The first character of a value in a call's object: is it the name, the arguments?"""
        self._expect = "in_value"
        key = self._key_text()
        self._args_on = key == "arguments"
        self._name_on = key == "name" and ch == '"'
        if self._args_on and ch == '"':
            self._items[-1].quoted = True

    def _key_text(self) -> str:
        try:
            key = json.loads("".join(self._key))
        except ValueError:
            return ""
        return key if isinstance(key, str) else ""

    def _collect(self, ch: str) -> None:
        if self._key_on:
            self._key.append(ch)
        if self._name_on:
            self._name.append(ch)
        if self._args_on:
            item = self._items[-1]
            item.arguments.append(ch)
            if item.quoted:
                return
            if item.name_sent:
                self._send(ch)
            else:
                item.held.append(ch)

    def _string_closed(self) -> None:
        self._key_on = False
        if not self._name_on:
            return
        self._name_on = False
        item = self._items[-1]
        try:
            item.name = json.loads("".join(self._name))
        except ValueError:
            item.name = None
        self._name = []
        if isinstance(item.name, str):
            item.name_sent = True
            self._out.append(CallPiece(len(self._items) - 1, item.name, "".join(item.held)))
            item.held = []

    def _send(self, text: str) -> None:
        index = len(self._items) - 1
        last = self._out[-1] if self._out else None
        if last is not None and last.index == index:
            last.arguments += text
        else:
            self._out.append(CallPiece(index, None, text))

    def _item_done(self) -> None:
        self._args_on = self._name_on = False
        item = self._items[-1]
        if item.quoted and item.name_sent:
            try:
                decoded = json.loads("".join(item.arguments).strip())
            except ValueError:
                return
            if isinstance(decoded, str):
                self._send(decoded)
