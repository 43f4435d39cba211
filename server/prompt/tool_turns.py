"""The conversation rules once tools take part, as OpenAI states them: an assistant message with
`tool_calls` is followed by one "tool" message per call (any order, each naming its call's id);
after the results the assistant answers (or calls again), or the user speaks. A conversation ends
with a user message or with the last result, where the model answers; or, to continue it, with an
assistant message without calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from server.errors import InvalidRequestError

if TYPE_CHECKING:
    from server.prompt.template import Turn


def _fail(index: int, field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"messages[{index}]: {message}", param=f"messages[{index}].{field}")


class _Rules:
    """Walks the turns once; `pending` holds the ids of the calls still waiting for their result."""

    def __init__(self) -> None:
        self.previous = "start"  # start, user, assistant, calls, tool
        self.pending: list[str] = []

    def step(self, index: int, turn: Turn) -> None:
        if turn.role == "system":
            raise _fail(index, "role", "a system message is only allowed as the first message.")
        if turn.role == "tool":
            self._result(index, turn)
            return
        if self.pending:
            raise _fail(
                index,
                "role",
                f"the tool calls {', '.join(self.pending)} have no result yet: each call of an "
                "assistant message must be answered by a tool message (role 'tool', tool_call_id) "
                "before the next assistant or user message.",
            )
        allowed = {"user": ("start", "assistant", "tool"), "assistant": ("user", "tool")}[turn.role]
        if self.previous not in allowed:
            raise _fail(
                index,
                "role",
                f"has role '{turn.role}' after a '{self.previous}' message: after an optional system "
                "message, roles alternate user/assistant, and tool messages follow the assistant "
                "message whose calls they answer.",
            )
        if turn.role == "assistant" and turn.tool_calls:
            ids = [call.id for call in turn.tool_calls]
            if len(set(ids)) != len(ids):
                raise _fail(index, "tool_calls", "two tool calls have the same id.")
            self.pending, self.previous = ids, "calls"
        else:
            self.previous = turn.role

    def _result(self, index: int, turn: Turn) -> None:
        if self.previous not in ("calls", "tool"):
            raise _fail(index, "role", "a tool message must follow an assistant message with tool_calls.")
        if turn.tool_call_id not in self.pending:
            raise _fail(
                index,
                "tool_call_id",
                f"tool_call_id {turn.tool_call_id!r} answers no open call of the assistant message "
                f"before it (open: {', '.join(self.pending) or 'none'}).",
            )
        self.pending.remove(turn.tool_call_id)
        self.previous = "tool"


def validate_tool_conversation(
    messages: Sequence[Turn], continue_final: bool = False
) -> tuple[str | None, list[Turn]]:
    """The system text and the other turns, or a 400 naming the message that breaks a rule."""
    system: str | None = None
    turns = list(messages)
    if turns[0].role == "system":
        system, turns = turns[0].text, turns[1:]
    offset = len(messages) - len(turns)
    rules = _Rules()
    for i, turn in enumerate(turns):
        rules.step(i + offset, turn)
    last = len(messages) - 1
    if rules.pending:
        raise _fail(last, "role", f"the tool calls {', '.join(rules.pending)} have no result yet.")
    ends = ("assistant",) if continue_final else ("user", "tool")
    if rules.previous not in ends:
        want = "an assistant message without tool calls" if continue_final else "a user or tool message"
        raise _fail(last, "role", f"the last message must be {want}.")
    return system, turns
