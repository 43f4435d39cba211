"""How the answer of a request with tools is read: where the calls start, and which tools exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from server.prompt.tool_parse import CallScanner
from server.prompt.tools import Tool


@dataclass(frozen=True, slots=True)
class ToolOutput:
    marker: str | None  # what starts the calls; None: the whole answer is the calls' JSON
    offered: list[Tool]
    new_id: Callable[[], str]  # a call id in the shape the prompt format takes back in the history

    def scanner(self) -> CallScanner:
        return CallScanner(self.marker)
