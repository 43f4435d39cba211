"""Mistral's v3 instruct format, with tools: prompts for checkpoints whose tokenizer has the tool
control tokens (Mistral-7B-Instruct-v0.3, Mixtral-8x22B-Instruct-v0.1).

    <s>[INST] u1[/INST] a1</s>[AVAILABLE_TOOLS] [...][/AVAILABLE_TOOLS][INST] sys\\n\\nu2[/INST]
    [TOOL_CALLS] [{"name": ..., "arguments": {...}, "id": "abc123XYZ"}]</s>
    [TOOL_RESULTS] {"content": ..., "call_id": "abc123XYZ"}[/TOOL_RESULTS]

Encoded id for id as Mistral's reference encoder does it (mistral-common's v3 instruct tokenizer
and its request normalizer), which is what these models were trained on: the markers are single
control tokens and every piece of text between them is encoded on its own (SentencePiece's "▁"
in front of each). The system prompt and the tool list go before the LAST user message, not the
first; consecutive messages of one role are merged, their texts joined by a blank line; tool
calls and results stay in the prompt throughout the history. JSON is Python's `json.dumps` with
its default separators and non-ASCII kept, as mistral-common writes it; arguments and results
that parse as JSON are written as JSON values, anything else as a JSON string.

Conversations mistral-common refuses are refused here too (a 400 naming the field), because no
encoding of them matches what the model saw in training: a tool call id must be 9 letters or
digits, as v3's ids are, and the roles must follow each other as mistral-common allows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from server.errors import InvalidRequestError
from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import Tool, ToolCall

V3Role = Literal["system", "user", "assistant", "tool"]

CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")  # v3's tool call ids
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_JOIN = "\n\n"

# Control token texts, in the order the v3 SentencePiece model numbers them (ids 3 to 9).
BEGIN_INST, END_INST = "[INST]", "[/INST]"
TOOL_CALLS = "[TOOL_CALLS]"
BEGIN_TOOLS, END_TOOLS = "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"
BEGIN_RESULTS, END_RESULTS = "[TOOL_RESULTS]", "[/TOOL_RESULTS]"
V3_CONTROL_TOKENS = (BEGIN_INST, END_INST, TOOL_CALLS, BEGIN_TOOLS, END_TOOLS, BEGIN_RESULTS, END_RESULTS)


@dataclass(frozen=True, slots=True)
class V3Message:
    """One chat message as the v3 format needs it. `tool_calls`: an assistant's calls (then `text`
    is empty); `tool_call_id`: which call a tool message answers."""

    role: V3Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = field(default=())
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class V3Tokens:
    """The control token ids of one v3 tokenizer."""

    bos: int
    eos: int
    begin_inst: int
    end_inst: int
    tool_calls: int
    begin_tools: int
    end_tools: int
    begin_results: int
    end_results: int


def v3_tokens(tokenizer: Tokenizer) -> V3Tokens | None:
    """The tokenizer's v3 control token ids; None unless each is one special token (a v1 tokenizer
    spells "[INST]" as text, and has no tool tokens at all)."""
    ids = {text: i for i, text in tokenizer.control_tokens.items()}
    if tokenizer.bos_id is None or tokenizer.eos_id is None or any(t not in ids for t in V3_CONTROL_TOKENS):
        return None
    return V3Tokens(tokenizer.bos_id, tokenizer.eos_id, *(ids[t] for t in V3_CONTROL_TOKENS))


def has_v3_tool_tokens(tokenizer: Tokenizer) -> bool:
    return v3_tokens(tokenizer) is not None


def encode_v3(
    tokenizer: Tokenizer,
    messages: list[V3Message],
    tools: list[Tool] | None = None,
    *,
    continue_final: bool = False,
) -> list[int]:
    """Prompt ids for `messages` (system messages anywhere among them, as the request has them) and
    the `tools` offered, with the model's answer to come next.

    `continue_final`: the last message is an assistant's, left open (no EOS) for the model to go
    on with (mistral-common's `prefix` message). Errors name `messages[i]` by the index in
    `messages` and `tools[i]` by the index in `tools`."""
    marks = v3_tokens(tokenizer)
    if marks is None:
        raise InvalidRequestError("This model's tokenizer has no v3 tool tokens.", param="messages")
    validate_v3(messages, tools or [], continue_final)
    system = _JOIN.join(m.text for m in messages if m.role == "system" and m.text) or None
    merged = _merge_roles(messages)
    last_user = max(i for i, m in enumerate(merged) if m.role == "user")
    ids = [marks.bos]
    for i, message in enumerate(merged):
        if message.role == "user":
            ids += _user(
                tokenizer, marks, message.text, tools if i == last_user else None, system, i == last_user
            )
        elif message.role == "tool":
            result = {"content": _json_value(message.text), "call_id": message.tool_call_id}
            ids += [marks.begin_results, *_encode_json(tokenizer, result), marks.end_results]
        else:
            ids += _assistant(tokenizer, marks, message)
            if not (continue_final and i == len(merged) - 1):
                ids.append(marks.eos)
    return ids


def _user(
    tokenizer: Tokenizer,
    marks: V3Tokens,
    text: str,
    tools: list[Tool] | None,
    system: str | None,
    is_last: bool,
) -> list[int]:
    ids: list[int] = []
    if tools:
        ids += [marks.begin_tools, *_encode_json(tokenizer, [_tool_json(t) for t in tools]), marks.end_tools]
    if is_last and system:
        text = f"{system}{_JOIN}{text}"
    return [*ids, marks.begin_inst, *tokenizer.encode_segment(text), marks.end_inst]


def _assistant(tokenizer: Tokenizer, marks: V3Tokens, message: V3Message) -> list[int]:
    if message.tool_calls and message.text:
        raise InvalidRequestError(
            "An assistant message cannot have both text and tool_calls in this model's format (Mistral "
            "v3), and neither can consecutive assistant messages merged into one.",
            param="messages",
        )
    if not message.tool_calls:
        return tokenizer.encode_segment(message.text.rstrip(" "))
    calls = [_call_json(call) for call in message.tool_calls]
    return [marks.tool_calls, *_encode_json(tokenizer, calls)]


def _encode_json(tokenizer: Tokenizer, value: object) -> list[int]:
    return tokenizer.encode_segment(json.dumps(value, ensure_ascii=False))


def _json_value(text: str) -> Any:
    """What mistral-common writes for arguments or a tool result: the JSON value the text parses to
    (empty text: {}), else the text itself."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _tool_json(tool: Tool) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description or "", "parameters": tool.parameters}
    return {"type": "function", "function": function}


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {"name": call.name, "arguments": _json_value(call.arguments), "id": call.id}


def _merge_roles(messages: list[V3Message]) -> list[V3Message]:
    """mistral-common's normalizer: runs of one role become one message (texts joined by a blank line,
    calls concatenated); tool messages stay one each; system messages leave the list but still end a
    run; a conversation that does not start with a user message gets an empty one first."""
    runs: list[list[V3Message]] = []
    for message in messages:
        if runs and runs[-1][0].role == message.role:
            runs[-1].append(message)
        else:
            runs.append([message])
    merged: list[V3Message] = []
    for run in runs:
        role = run[0].role
        if role == "tool":
            merged += run
        elif role != "system":
            text = _JOIN.join(m.text for m in run if m.text)
            merged.append(V3Message(role, text, tuple(c for m in run for c in m.tool_calls)))
    if not merged or merged[0].role != "user":
        merged.insert(0, V3Message("user"))
    return merged


_FOLLOWS: dict[str, set[str]] = {
    "system": {"user", "assistant", "system"},
    "user": {"assistant", "system", "user"},
    "assistant": {"assistant", "user", "tool"},
    "tool": {"assistant", "tool", "user"},
}


def validate_v3(messages: list[V3Message], tools: list[Tool], continue_final: bool) -> None:
    """mistral-common's v3 request validation, with OpenAI-shaped errors."""
    if not messages:
        raise InvalidRequestError("messages must contain at least one message.", param="messages")
    for i, tool in enumerate(tools):
        _check_name(tool.name, f"tools[{i}].function.name")
    _check_order(messages, continue_final)
    for i, message in enumerate(messages):
        _check_message(message, f"messages[{i}]")


def _check_order(messages: list[V3Message], continue_final: bool) -> None:
    last = len(messages) - 1
    end = messages[last].role
    if continue_final and end != "assistant":
        raise InvalidRequestError(
            f"messages[{last}]: with continue_final_message the last message must be the assistant's.",
            param=f"messages[{last}].role",
        )
    if end == "assistant" and not continue_final:
        raise InvalidRequestError(
            f"messages[{last}]: the last message must come from the user or a tool (or, with "
            "continue_final_message, from the assistant).",
            param=f"messages[{last}].role",
        )
    if last == 0 and end not in ("user", "system"):
        raise InvalidRequestError(
            "messages[0]: a conversation must start with a user message.", param="messages[0].role"
        )
    pending = 0  # tool calls of the latest assistant message not answered yet
    for i in range(1, len(messages)):
        before, now = messages[i - 1], messages[i]
        if now.role not in _FOLLOWS[before.role]:
            raise InvalidRequestError(
                f"messages[{i}]: a '{now.role}' message cannot follow a '{before.role}' message.",
                param=f"messages[{i}].role",
            )
        if now.role == "tool":
            pending -= 1
        elif now.role == "assistant":
            if pending:
                raise InvalidRequestError(
                    f"messages[{i}]: the assistant's previous tool calls need one tool message each first.",
                    param=f"messages[{i}]",
                )
            pending = len(now.tool_calls)


def _check_message(message: V3Message, where: str) -> None:
    if message.role == "tool":
        if not CALL_ID.match(message.tool_call_id or ""):
            raise InvalidRequestError(
                f"{where}.tool_call_id must be the 9 letters or digits of a call id this model made "
                f"(Mistral v3 call ids), got {message.tool_call_id!r}.",
                param=f"{where}.tool_call_id",
            )
    elif message.role == "assistant":
        if bool(message.text) == bool(message.tool_calls):
            raise InvalidRequestError(
                f"{where}: an assistant message needs either text or tool_calls (not both) in this "
                "model's format (Mistral v3).",
                param=f"{where}.content",
            )
        for j, call in enumerate(message.tool_calls):
            if not CALL_ID.match(call.id):
                raise InvalidRequestError(
                    f"{where}.tool_calls[{j}].id must be 9 letters or digits (Mistral v3 call ids), "
                    f"got {call.id!r}.",
                    param=f"{where}.tool_calls[{j}].id",
                )
            _check_name(call.name, f"{where}.tool_calls[{j}].function.name")
    elif message.tool_calls or message.tool_call_id is not None:
        raise InvalidRequestError(f"{where}: only assistant messages carry tool calls.", param=where)


def _check_name(name: str, param: str) -> None:
    if not FUNCTION_NAME.match(name):
        raise InvalidRequestError(
            f"{param} must be 1 to 64 letters, digits, underscores or dashes, got {name!r}.", param=param
        )
