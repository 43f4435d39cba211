"""A chat request's tools: what the prompt offers, how the engine constrains the answer, and the
request's messages as prompt turns.

- "none" (or no tools): no tools in the prompt, a plain answer.
- "required", or a named function: the whole answer is the calls' JSON list, held by the engine's
  grammar to `[{"name": <one of the tools>, "arguments": <that tool's parameters>}, ...]` (one item
  when parallel_tool_calls is false or a function is named), so the calls always parse and follow
  their schema, whatever the model.
- "auto": the model writes text, or text then the format's marker and such a list
  (server/engine/tool_grammar.py): text never holds a marker that is not followed by valid calls.

Where the marker is a control token (Mistral v3), "required" and a named function end the prompt
with it and the grammar holds what follows (an optional space, then the list); "auto" decodes the
answer with special tokens, so the marker the model writes is in the text the scanner reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from server.engine.base import LeadThenJson, SamplingOptions, TextOrJson
from server.errors import InvalidRequestError
from server.openai.schemas.chat import ChatMessage, ChatRequestFields
from server.openai.schemas.response_format import ResponseFormatText
from server.openai.schemas.tools import NamedToolChoice, ToolChoice, ToolSpec
from server.prompt.template import Turn
from server.prompt.tool_format import ToolFormat
from server.prompt.tools import Tool, ToolCall

Mode = Literal["none", "auto", "required", "named"]


@dataclass(frozen=True, slots=True)
class ToolPlan:
    offered: list[Tool]  # the tools the prompt shows (none with tool_choice "none")
    mode: Mode
    parallel: bool

    def calls_schema(self) -> dict[str, Any]:
        """JSON Schema of the answer's calls: each item one of the offered tools with its arguments."""
        items = [
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": {**t.parameters, "type": "object"}},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in self.offered
        ]
        schema: dict[str, Any] = {"type": "array", "items": {"anyOf": items}, "minItems": 1}
        if not self.parallel or self.mode == "named":
            schema["maxItems"] = 1
        return schema


def request_plan(body: ChatRequestFields) -> ToolPlan | None:
    """A chat request's plan, with the fields that cannot go with tool calls refused."""
    plan = tool_plan(body.tools, body.tool_choice, body.parallel_tool_calls is not False)
    if plan is not None and plan.mode != "none":
        _check_compatible(body)
    return plan


def tool_plan(
    specs: list[ToolSpec] | None, choice: ToolChoice | None, parallel: bool = True
) -> ToolPlan | None:
    """None: the request has nothing to do with tools."""
    tools = [
        Tool(
            t.function.name,
            t.function.description,
            t.function.parameters or {"type": "object", "properties": {}},
        )
        for t in specs or ()
    ]
    if not tools and choice in (None, "none", "auto"):
        return None
    if not tools:
        raise InvalidRequestError(
            "tool_choice asks for a tool call, but the request has no tools.", param="tool_choice"
        )
    if len({t.name for t in tools}) != len(tools):
        raise InvalidRequestError("Two tools have the same name.", param="tools")
    if isinstance(choice, NamedToolChoice):
        named = [t for t in tools if t.name == choice.function.name]
        if not named:
            raise InvalidRequestError(
                f"tool_choice names the function {choice.function.name!r}, which is not in tools.",
                param="tool_choice",
            )
        return ToolPlan(named, "named", False)
    mode: Mode = choice or "auto"
    return ToolPlan([] if mode == "none" else tools, mode, parallel)


def _check_compatible(body: ChatRequestFields) -> None:
    """Fields that cannot go with a tool call: each a 400 naming it."""
    if body.response_format is not None and not isinstance(body.response_format, ResponseFormatText):
        raise InvalidRequestError(
            "response_format cannot be combined with tools: tool calls have their own grammar. Send "
            'tool_choice "none" or no response_format.',
            param="response_format",
        )
    if body.structured_outputs is not None:
        raise InvalidRequestError(
            "structured_outputs cannot be combined with tools: tool calls have their own grammar.",
            param="structured_outputs",
        )
    if body.allowed_token_ids is not None:
        raise InvalidRequestError(
            "allowed_token_ids cannot be combined with tools: tool calls have their own grammar, which "
            "may need tokens the list leaves out.",
            param="allowed_token_ids",
        )
    if body.continue_final_message:
        raise InvalidRequestError(
            "continue_final_message cannot be combined with tools: the answer may be tool calls.",
            param="continue_final_message",
        )
    if body.stream:
        for name, value in (
            ("logprobs", body.logprobs),
            ("return_token_ids", body.return_token_ids),
            ("stream_options", body.continuous_usage),
        ):
            if value:
                raise InvalidRequestError(
                    f"{name} is not served in a stream with tools; ask without stream for it.", param=name
                )


def constrain(
    plan: ToolPlan | None, tool_format: ToolFormat | None, sampling: SamplingOptions
) -> SamplingOptions:
    """The engine's constraint for the answer of `plan`."""
    if plan is None or plan.mode == "none":
        return sampling
    assert tool_format is not None
    if plan.mode == "auto":
        spec = TextOrJson(tool_format.marker, tool_format.call_prefix, plan.calls_schema())
        special = sampling.skip_special_tokens and not tool_format.marker_is_token
        return dataclasses.replace(
            sampling, text_or_json=spec, structured_param="tools", skip_special_tokens=special
        )
    if tool_format.calls_lead is not None:
        lead = LeadThenJson(tool_format.calls_lead, plan.calls_schema())
        return dataclasses.replace(sampling, lead_then_json=lead, structured_param="tool_choice")
    return dataclasses.replace(sampling, json_schema=plan.calls_schema(), structured_param="tool_choice")


def opens_calls(plan: ToolPlan | None) -> bool:
    """The answer must be calls: a format whose marker is a token ends the prompt with it."""
    return plan is not None and plan.mode in ("required", "named")


def turns_of(messages: list[ChatMessage]) -> list[Turn]:
    """The messages as prompt turns, with the tool fields checked and named."""
    turns = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if m.tool_calls and m.role != "assistant":
            raise InvalidRequestError(
                f"{where}: only assistant messages carry tool_calls.", param=f"{where}.tool_calls"
            )
        if m.role == "tool" and not m.tool_call_id:
            raise InvalidRequestError(
                f"{where}: a tool message needs the tool_call_id of the call it answers.",
                param=f"{where}.tool_call_id",
            )
        if m.content is None and not (m.role == "assistant" and m.tool_calls):
            raise InvalidRequestError(
                f"{where}: content may be null only in an assistant message with tool_calls.",
                param=f"{where}.content",
            )
        calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or ())
        turns.append(Turn(m.template_role(), m.text(), calls, m.tool_call_id if m.role == "tool" else None))
    return turns
