"""A Responses request as the chat pipeline's request: the one path from request to engine.

The Responses API is another envelope around the same generation: a conversation in, one assistant
message out. So a Responses request becomes a `ChatCompletionRequest` (its items become chat
messages, `max_output_tokens` becomes `max_completion_tokens`, `text.format` becomes
`response_format`) and goes through chat's checks, prompt rendering, sampling and admission; only
the envelope (server/openai/bodies/responses.py) differs. Errors raised on the way name chat's
fields; `responses_params` names the Responses field they came from.

Items are kept as OpenAI lists them (`GET /v1/responses/{id}/input_items`): each with an id, a user,
system or developer message as `input_text` parts, an assistant message as `output_text` parts.

Function tools map onto chat's as follows:
- `tools: [{type: "function", name, description, parameters, strict}]` (flat) -> chat's
  `tools: [{type: "function", function: {name, description, parameters, strict}}]`;
  `tool_choice` "none" | "auto" | "required" the same; `{type: "function", name}` -> chat's
  `{type: "function", function: {name}}`; `parallel_tool_calls` as it is.
- item `{type: "function_call", call_id, name, arguments}` -> a call in an assistant message's
  `tool_calls` (`id: call_id`); calls that follow an assistant message (its text, or other calls)
  join it, as a chat answer of text and calls comes back as a message item and function_call items.
  `{type: "function_call_output", call_id, output}` -> `{role: "tool", tool_call_id: call_id,
  content: output}`. Both are stored as items, with an id and a status.
- chat's answer with calls -> function_call output items (server/openai/bodies/response_calls.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from server.errors import APIError, InvalidRequestError
from server.openai.schemas.chat import ChatCompletionRequest
from server.openai.schemas.response_tools import (
    FunctionCallItem,
    FunctionCallOutputItem,
    chat_tool_choice,
)
from server.openai.schemas.responses import InputItem, MessageItem, ResponsesRequest, TextFormatJsonSchema

# A chat field named in an error -> the Responses field it came from.
_PARAMS = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
}


def item_id(prefix: str = "msg") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def message_item(role: str, text: str, item: str | None = None) -> dict[str, Any]:
    """A stored message item: an assistant's in the output message shape, the others' as input."""
    if role == "assistant":
        return {
            "id": item or item_id(),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    return {
        "id": item or item_id(),
        "type": "message",
        "role": role,
        "status": "completed",
        "content": [{"type": "input_text", "text": text}],
    }


def _stored_item(item: InputItem) -> dict[str, Any]:
    if isinstance(item, MessageItem):
        return message_item(item.role, item.text(), item.id)
    if isinstance(item, FunctionCallItem):
        return {
            "id": item.id or item_id("fc"),
            "type": "function_call",
            "status": "completed",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
        }
    output: Any = item.output if isinstance(item.output, str) else [p.model_dump() for p in item.output]
    return {
        "id": item.id or item_id("fco"),
        "type": "function_call_output",
        "status": "completed",
        "call_id": item.call_id,
        "output": output,
    }


def input_items(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's `input` as items, each with an id (the client's, or a new one)."""
    if isinstance(body.input, str):
        return [message_item("user", body.input)]
    return [_stored_item(item) for item in body.input]


def _item_text(item: dict[str, Any]) -> str:
    return "".join(str(part.get("text", "")) for part in item.get("content", []))


def _chat_message(item: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chat message of a stored item; None when it joined the assistant message before it."""
    kind = item.get("type", "message")
    if kind == "function_call":
        call = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        if messages and messages[-1]["role"] == "assistant":
            messages[-1].setdefault("tool_calls", []).append(call)
            return None
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if kind == "function_call_output":
        output = FunctionCallOutputItem.model_validate(item)
        return {"role": "tool", "tool_call_id": output.call_id, "content": output.text()}
    return {"role": str(item["role"]), "content": _item_text(item)}


def chat_messages(instructions: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages of the stored items, `instructions` first. The chat templates take one system
    message, first: the instructions and the system or developer messages that open the input are
    joined into it (a blank line between), so instructions can be added to a conversation that
    brings its own system message."""
    messages: list[dict[str, Any]] = []
    for item in items:
        message = _chat_message(item, messages)
        if message is not None:
            messages.append(message)
    opening: list[str] = [] if instructions is None else [instructions]
    while messages and messages[0]["role"] in ("system", "developer"):
        opening.append(messages.pop(0)["content"])
    if opening:
        messages.insert(0, {"role": "system", "content": "\n\n".join(opening)})
    return messages


def chat_request(body: ResponsesRequest, items: list[dict[str, Any]]) -> ChatCompletionRequest:
    """The chat request that generates this response from `items` (earlier turns and the input)."""
    text_format = body.text.format if body.text is not None else None
    response_format: dict[str, Any] | None = None
    if isinstance(text_format, TextFormatJsonSchema):
        response_format = {"type": "json_schema", "json_schema": text_format.spec().model_dump(by_alias=True)}
    elif text_format is not None:
        response_format = {"type": text_format.type}
    try:
        return ChatCompletionRequest.model_validate(
            {
                "model": body.model,
                "messages": chat_messages(body.instructions, items),
                "max_completion_tokens": body.max_output_tokens,
                "temperature": body.temperature,
                "top_p": body.top_p,
                "response_format": response_format,
                "stream": body.streams,
                "user": body.user,
                "tools": [tool.chat() for tool in body.tools] if body.tools else None,
                "tool_choice": chat_tool_choice(body.tool_choice),
                "parallel_tool_calls": body.parallel_tool_calls,
            }
        )
    except ValidationError as exc:  # the Responses schema checked the fields; this is a backstop
        raise InvalidRequestError(
            f"The input cannot be served: {exc.errors()[0]['msg']}", param="input"
        ) from None


def echoed(body: ResponsesRequest) -> dict[str, Any]:
    """The request's fields that a Response object repeats, as they were applied."""
    text_format = body.text.format if body.text is not None else None
    return {
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "text": {"format": text_format.model_dump(by_alias=True) if text_format else {"type": "text"}},
        "tool_choice": _echo_choice(body),
        "tools": [tool.echo() for tool in body.tools or ()],
        "truncation": "disabled",
        "user": body.user,
        "background": False,
    }


def _echo_choice(body: ResponsesRequest) -> Any:
    if body.tool_choice is None:
        return "auto"
    if isinstance(body.tool_choice, str):
        return body.tool_choice
    return body.tool_choice.model_dump()


def responses_params(exc: APIError) -> APIError:
    """`exc` naming the Responses field that its chat field came from (`messages[2].role` ->
    `input`: the index counts instructions and earlier turns, which the client did not send)."""
    if exc.param is not None:
        head = exc.param.split("[", 1)[0].split(".", 1)[0]
        if head in _PARAMS:
            exc.param = _PARAMS[head]
    return exc
