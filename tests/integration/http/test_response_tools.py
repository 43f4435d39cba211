"""Function tools on /v1/responses, on the real engine: the grammar makes the tiny noise model's calls
valid, and every body and event is held strictly to the openai SDK's models of OpenAI's spec."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseItemList,
)
from pydantic import BaseModel

from server.engine.base import Engine
from tests.app_client import app_client
from tests.integration.http.test_responses import EVENTS, MODEL, check_spec, sdk, sse_events

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"zone": {"enum": ["utc", "cet"]}},
    "required": ["zone"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {"type": "function", "name": "get_weather", "description": "Weather", "parameters": WEATHER},
    {"type": "function", "name": "get_time", "parameters": TIME, "strict": True},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK = "What is the weather in Paris?"
TEXT_PART = {"type": "input_text", "text": "21"}
CALL = {"tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False, "temperature": 0.0}
TOOL_EVENTS: dict[str, type[BaseModel]] = {
    **EVENTS,
    "response.function_call_arguments.delta": ResponseFunctionCallArgumentsDeltaEvent,
    "response.function_call_arguments.done": ResponseFunctionCallArgumentsDoneEvent,
}


@pytest.fixture
async def http(engine: Engine, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(engine, responses_store_path=tmp_path / "responses.sqlite3") as client:
        yield client


def check_call(item: dict[str, Any], only: str | None = None) -> None:
    check_spec(ResponseFunctionToolCall, item)
    assert item["id"].startswith("fc_") and item["call_id"] and item["status"] == "completed"
    assert item["name"] in SCHEMAS and (only is None or item["name"] == only)
    jsonschema.validate(json.loads(item["arguments"]), SCHEMAS[item["name"]])


@pytest.mark.parametrize(
    ("choice", "only"), [("required", None), ({"type": "function", "name": "get_time"}, "get_time")]
)
async def test_a_required_call_is_a_function_call_item(
    http: httpx.AsyncClient, choice: Any, only: str | None
) -> None:
    raw = await sdk(http).responses.with_raw_response.create(
        input=ASK, max_output_tokens=120, **{**CALL, "tool_choice": choice}
    )
    body = raw.http_response.json()
    check_spec(Response, body)
    assert body["status"] == "completed"
    [item] = body["output"]  # parallel_tool_calls false: one call, no text
    check_call(item, only)
    assert body["tools"][0] == {**TOOLS[0], "strict": None} and body["tool_choice"] == choice
    parsed = raw.parse()
    assert isinstance(parsed.output[0], ResponseFunctionToolCall) and parsed.output_text == ""
    stored = await http.get(f"/v1/responses/{body['id']}")
    check_spec(Response, stored.json())
    assert stored.json()["output"] == body["output"]


async def test_streamed_calls_send_every_event_in_order(http: httpx.AsyncClient) -> None:
    body = {"input": ASK, "stream": True, "max_output_tokens": 120, **CALL}
    events = sse_events((await http.post("/v1/responses", json=body)).text)
    for event in events:
        check_spec(TOOL_EVENTS[event["type"]], event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed", final
    calls = final["output"]
    assert calls and all(item["type"] == "function_call" for item in calls)
    kinds = [e["type"] for e in events[2:-1]]
    at = 0
    for index, item in enumerate(calls):  # per call: added, deltas, done, item done; in output order
        check_call(item)
        assert kinds[at] == "response.output_item.added"
        added = events[2 + at]
        assert added["output_index"] == index and added["item"] == {
            **item,
            "arguments": "",
            "status": "in_progress",
        }
        at += 1
        deltas = []
        while kinds[at] == "response.function_call_arguments.delta":
            deltas.append(events[2 + at])
            at += 1
        assert deltas and {(d["item_id"], d["output_index"]) for d in deltas} == {(item["id"], index)}
        assert "".join(d["delta"] for d in deltas) == item["arguments"]
        done, item_done = events[2 + at], events[3 + at]
        assert done["type"] == "response.function_call_arguments.done"
        assert done["arguments"] == item["arguments"]
        assert item_done["type"] == "response.output_item.done" and item_done["item"] == item
        assert item_done["output_index"] == index
        at += 2
    assert at == len(kinds)
    assert (await http.get(f"/v1/responses/{final['id']}")).json()["output"] == calls


async def test_sdk_stream_helper_assembles_the_calls(http: httpx.AsyncClient) -> None:
    async with sdk(http).responses.stream(model=MODEL, input=ASK, max_output_tokens=120, **CALL) as stream:
        argument_events = [e async for e in stream if e.type == "response.function_call_arguments.done"]
        final = await stream.get_final_response()
    [call] = final.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert [e.arguments for e in argument_events] == [call.arguments]
    check_call(call.model_dump(exclude_none=True, by_alias=True, exclude={"parsed_arguments"}))


async def test_two_steps_through_previous_response_id(http: httpx.AsyncClient) -> None:
    client = sdk(http)
    first = await client.responses.create(input=ASK, max_output_tokens=120, **CALL)
    [call] = first.output
    assert isinstance(call, ResponseFunctionToolCall)
    result = {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}
    second = await client.responses.create(
        input=[result],  # type: ignore[list-item]
        previous_response_id=first.id,
        tools=TOOLS,
        tool_choice="none",
        max_output_tokens=4,
        temperature=0.0,
    )
    assert [item.type for item in second.output] == ["message"] and second.output_text
    # The prompt is chat's: the question, the assistant's call, the tool's result.
    history = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": None, "tool_calls": [_chat_call(call)]},
        {"role": "tool", "tool_call_id": call.call_id, "content": '{"temp": 21}'},
    ]
    tokenize = {"messages": history, "tools": _chat(TOOLS), "tool_choice": "none"}
    counted = await http.post("/tokenize", json=tokenize)
    assert second.usage is not None and second.usage.input_tokens == counted.json()["count"]
    listed = await http.get(f"/v1/responses/{second.id}/input_items", params={"order": "asc"})
    check_spec(ResponseItemList, listed.json())
    assert [i["type"] for i in listed.json()["data"]] == ["message", "function_call", "function_call_output"]
    assert listed.json()["data"][1]["id"] == call.id


async def test_the_whole_item_list_sent_back_without_a_stored_response(http: httpx.AsyncClient) -> None:
    """As agent frameworks run a loop with store false: the output items go back in `input`."""
    client = sdk(http)
    first = await client.responses.create(
        input=[{"role": "user", "content": ASK}], store=False, max_output_tokens=120, **CALL
    )
    items: list[Any] = [
        {"role": "user", "content": ASK},
        *(item.model_dump(exclude_none=True, by_alias=True) for item in first.output),
        *(
            {"type": "function_call_output", "call_id": item.call_id, "output": [TEXT_PART]}
            for item in first.output
            if isinstance(item, ResponseFunctionToolCall)
        ),
    ]
    second = await client.responses.create(
        input=items, store=False, tools=TOOLS, tool_choice="none", max_output_tokens=4, temperature=0.0
    )
    assert second.output[0].type == "message" and second.output_text
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)


def _chat(tools: list[Any]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in tools]


def _chat_call(call: ResponseFunctionToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.call_id, "type": "function", "function": function}


ANSWER_WITHOUT_CALL = [{"type": "function_call_output", "call_id": "call_x", "output": "o"}]
ARRAY_PARAMS = {"type": "function", "name": "f", "parameters": {"type": "array"}}
ALLOWED = {"type": "allowed_tools", "mode": "auto", "tools": []}
IMAGE_OUTPUT = {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image"}]}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.0"),
        ({"tools": [TOOLS[0], {"type": "file_search", "vector_store_ids": ["v"]}]}, "tools.1"),
        ({"tools": [{"type": "mcp", "server_label": "x", "server_url": "http://x"}]}, "tools.0"),
        ({"tools": [{**TOOLS[0], "defer_loading": True}]}, "tools.0"),
        ({"tools": [{"type": "function", "name": "bad name"}]}, "tools.0.name"),
        ({"tools": [ARRAY_PARAMS]}, "tools.0.parameters"),
        ({"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": ALLOWED}, "tool_choice"),
        ({"tools": TOOLS, "max_tool_calls": 2}, "max_tool_calls"),
        ({"tools": TOOLS, "text": {"format": {"type": "json_object"}}}, "text.format"),
        ({"input": ANSWER_WITHOUT_CALL}, "input"),
        ({"input": [{"type": "function_call_output", "output": "o"}]}, "input.0.call_id"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input.0.arguments"),
        ({"input": [IMAGE_OUTPUT]}, "input.0.output.0.type"),
    ],
)
async def test_bad_tools_are_a_400_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], param: str
) -> None:
    raw = await client.post("/v1/responses", json={"input": ASK, "max_output_tokens": 2, **change})
    assert raw.status_code == 400, raw.text
    assert raw.json()["error"]["param"] == param, raw.json()
