"""Responses with text and several calls, from hand-made deltas of the model's text (the tiny model
cannot be made to write text, then calls, on demand): the message first, each call after it at its
own output index, the stream's final output the same as a whole response's, every event of the
spec."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import BaseModel

from server.engine.base import Delta, FinishReason
from server.observability.metrics import RequestTimer, ServerMetrics
from server.openai.bodies.response_calls import collect_tool_response, stream_tool_response
from server.openai.bodies.responses import ResponseContext, ResponsesStream
from server.openai.bodies.tool_output import ToolOutput
from server.prompt.plain_tools import MARKER, PlainTextTools
from server.prompt.tools import Tool

EVENTS: dict[str, type[BaseModel]] = {
    "response.created": ResponseCreatedEvent,
    "response.in_progress": ResponseInProgressEvent,
    "response.output_item.added": ResponseOutputItemAddedEvent,
    "response.content_part.added": ResponseContentPartAddedEvent,
    "response.output_text.delta": ResponseTextDeltaEvent,
    "response.output_text.done": ResponseTextDoneEvent,
    "response.content_part.done": ResponseContentPartDoneEvent,
    "response.output_item.done": ResponseOutputItemDoneEvent,
    "response.function_call_arguments.delta": ResponseFunctionCallArgumentsDeltaEvent,
    "response.function_call_arguments.done": ResponseFunctionCallArgumentsDoneEvent,
    "response.completed": ResponseCompletedEvent,
    "response.incomplete": ResponseIncompleteEvent,
}
TOOLS = ToolOutput(MARKER, [Tool("get_time"), Tool("get_weather")], PlainTextTools().new_call_id)
CALLS = (
    '[{"name": "get_time", "arguments": {"zone": "utc"}}, '
    '{"arguments": {"city": "Paris"}, "name": "get_weather"}]'
)


def context() -> ResponseContext:
    return ResponseContext(
        id="resp_1",
        created_at=1_700_000_000,
        model="tiny-mixtral",
        prompt_tokens=5,
        timer=RequestTimer(ServerMetrics()),
        echo={
            "instructions": None,
            "max_output_tokens": None,
            "metadata": {},
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "temperature": 1.0,
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "truncation": "disabled",
            "user": None,
            "background": False,
        },
        message_id="msg_1",
        tools=TOOLS,
    )


async def deltas(text: str, reason: FinishReason, seed: int) -> AsyncGenerator[tuple[int, Delta], None]:
    rng, at = random.Random(seed), 0
    while at < len(text):
        step = rng.randint(1, 6)
        last = at + step >= len(text)
        yield 0, Delta(text[at : at + step], [1], reason if last else None)
        at += step


def events_of(raw: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for event in raw:
        head, data = event.decode().rstrip("\n").split("\n")
        parsed = json.loads(data.removeprefix("data: "))
        assert head == f"event: {parsed['type']}"
        EVENTS[parsed["type"]].model_validate(parsed, strict=True)
        out.append(parsed)
    return out


def without_ids(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k not in ("id", "call_id")} for item in output]


async def both(text: str, reason: FinishReason, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The stream's events and the whole response of the same text."""
    stream = ResponsesStream(context())
    events = events_of([e async for e in stream_tool_response(stream, TOOLS, deltas(text, reason, seed))])
    whole = await collect_tool_response(context(), TOOLS, deltas(text, reason, seed))
    Response.model_validate(whole, strict=True)
    assert without_ids(events[-1]["response"]["output"]) == without_ids(whole["output"])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events, whole


@pytest.mark.parametrize("seed", range(4))
async def test_text_then_two_calls(seed: int) -> None:
    events, whole = await both(f"Let me see. {MARKER} {CALLS}", "stop", seed)
    assert whole["status"] == "completed"
    message, first, second = whole["output"]
    assert message["content"][0]["text"] == "Let me see. "
    assert (first["name"], json.loads(first["arguments"])) == ("get_time", {"zone": "utc"})
    assert (second["name"], json.loads(second["arguments"])) == ("get_weather", {"city": "Paris"})
    assert first["status"] == second["status"] == "completed"
    kinds = [(e["type"], e.get("output_index")) for e in events if "delta" not in e["type"]]
    assert kinds == [
        ("response.created", None),
        ("response.in_progress", None),
        ("response.output_item.added", 0),
        ("response.content_part.added", 0),
        ("response.output_text.done", 0),
        ("response.content_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.function_call_arguments.done", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.function_call_arguments.done", 2),
        ("response.output_item.done", 2),
        ("response.completed", None),
    ]
    for index, call in ((1, events[-1]["response"]["output"][1]), (2, events[-1]["response"]["output"][2])):
        pieces = [e for e in events if e["type"].endswith("arguments.delta") and e["output_index"] == index]
        assert "".join(e["delta"] for e in pieces) == call["arguments"]
        assert {e["item_id"] for e in pieces} == {call["id"]}


async def test_white_space_before_the_calls_makes_no_message() -> None:
    events, whole = await both(f"  \n{MARKER}{CALLS}", "stop", 0)
    assert [item["type"] for item in whole["output"]] == ["function_call", "function_call"]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [0, 1]


async def test_text_alone_is_one_message() -> None:
    events, whole = await both("  Sunny, 21 degrees.", "stop", 1)
    [message] = whole["output"]
    assert message["content"][0]["text"] == "  Sunny, 21 degrees."
    assert (
        "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        == "  Sunny, 21 degrees."
    )


async def test_calls_cut_by_max_output_tokens_are_incomplete() -> None:
    events, whole = await both(f"{MARKER}{CALLS[:-2]}", "length", 2)
    assert whole["status"] == "incomplete" and whole["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [item["status"] for item in whole["output"]] == ["completed", "incomplete"]
    assert events[-1]["type"] == "response.incomplete"
