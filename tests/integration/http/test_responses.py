"""POST /v1/responses and the stored responses on the real engine, through the openai SDK and raw
HTTP. Every body and event is held to the SDK's pydantic models of OpenAI's published spec, strictly
and with no key the model does not know."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseItemList,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import BaseModel

from server.engine.base import Engine
from tests.app_client import app_client

ALICE = "sk-alice-0123456789"
BOB = "sk-bob-9876543210"
MODEL = "tiny-mixtral"
CHEAP = {"max_output_tokens": 3, "temperature": 0.0}
# An object of one boolean: the grammar ends it after a few tokens, so the model stops ("completed").
BOOLEAN_OBJECT = {
    "type": "json_schema",
    "name": "answer",
    "schema": {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    },
}
EVENTS: dict[str, type[BaseModel]] = {
    "response.created": ResponseCreatedEvent,
    "response.in_progress": ResponseInProgressEvent,
    "response.output_item.added": ResponseOutputItemAddedEvent,
    "response.content_part.added": ResponseContentPartAddedEvent,
    "response.output_text.delta": ResponseTextDeltaEvent,
    "response.output_text.done": ResponseTextDoneEvent,
    "response.content_part.done": ResponseContentPartDoneEvent,
    "response.output_item.done": ResponseOutputItemDoneEvent,
    "response.completed": ResponseCompletedEvent,
    "response.incomplete": ResponseIncompleteEvent,
    "response.failed": ResponseFailedEvent,
    "error": ResponseErrorEvent,
}


def check_spec(model: type[BaseModel], data: dict[str, Any]) -> None:
    """`data` is a valid `model` (strict: no coercion) and holds no key the spec does not name,
    here or in the response an event carries."""
    model.model_validate(data, strict=True)
    assert set(data) <= set(model.model_fields), set(data) - set(model.model_fields)
    if isinstance(data.get("response"), dict):
        check_spec(Response, data["response"])


def sse_events(text: str) -> list[dict[str, Any]]:
    """Each event of a Responses stream; its `event:` line must name the type its data carries."""
    events = []
    for block in filter(None, text.split("\n\n")):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        events.append(data)
    return events


@pytest.fixture
async def http(engine: Engine, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(engine, responses_store_path=tmp_path / "responses.sqlite3") as client:
        yield client


def sdk(http: httpx.AsyncClient, key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key=key, http_client=http, max_retries=0)


async def tokens_of(http: httpx.AsyncClient, messages: list[dict[str, str]]) -> int:
    count = (await http.post("/tokenize", json={"messages": messages})).json()["count"]
    assert isinstance(count, int)
    return count


async def test_string_input_answers_a_response_of_the_spec(http: httpx.AsyncClient) -> None:
    raw = await http.post("/v1/responses", json={"input": "Say hi.", **CHEAP})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    check_spec(Response, body)
    assert body["id"].startswith("resp_") and body["object"] == "response"
    usage = body["usage"]
    assert usage["input_tokens"] == await tokens_of(http, [{"role": "user", "content": "Say hi."}])
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    # Three tokens of noise rarely end on EOS; whichever way it ended, the status says so.
    cut = usage["output_tokens"] == 3 and body["status"] == "incomplete"
    assert cut or body["status"] == "completed"
    assert body["incomplete_details"] == ({"reason": "max_output_tokens"} if cut else None)
    assert body["output"][0]["status"] == body["status"]
    assert (body["temperature"], body["max_output_tokens"]) == (0.0, 3)

    response = await sdk(http).responses.create(input="Say hi.", **CHEAP)  # type: ignore[arg-type]
    assert response.output_text == response.output[0].content[0].text  # type: ignore[union-attr]


async def test_list_input_and_instructions_reach_the_prompt(http: httpx.AsyncClient) -> None:
    items = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}]},
        {"role": "user", "content": "Name a color."},
    ]
    client = sdk(http)
    response = await client.responses.create(input=items, instructions="You are terse.", **CHEAP)  # type: ignore[arg-type]
    expected = [
        {"role": "system", "content": "You are terse.\n\nAnswer briefly."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Name a color."},
    ]
    assert response.usage is not None
    assert response.usage.input_tokens == await tokens_of(http, expected)
    assert response.instructions == "You are terse."
    listed = await http.get(f"/v1/responses/{response.id}/input_items", params={"order": "asc"})
    check_spec(ResponseItemList, listed.json())
    data = listed.json()["data"]
    assert [(i["role"], i["content"][0]["type"], i["content"][0]["text"]) for i in data] == [
        ("developer", "input_text", "Answer briefly."),
        ("user", "input_text", "Hello"),
        ("assistant", "output_text", "Hi!"),
        ("user", "input_text", "Name a color."),
    ]


async def test_json_schema_format_is_enforced(http: httpx.AsyncClient) -> None:
    response = await sdk(http).responses.create(
        input="Is the sky blue? Answer in JSON.",
        text={"format": BOOLEAN_OBJECT},  # type: ignore[typeddict-item]
        max_output_tokens=30,
    )
    assert response.status == "completed"
    assert set(json.loads(response.output_text)) == {"ok"}
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"


async def test_stream_sends_every_event_in_order(http: httpx.AsyncClient) -> None:
    raw = await http.post("/v1/responses", json={"input": "Count.", "stream": True, **CHEAP})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in raw.text
    events = sse_events(raw.text)
    for event in events:
        check_spec(EVENTS[event["type"]], event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed" if events[-1]["response"]["status"] == "completed" else "response.incomplete",
    ]
    text = "".join(e["delta"] for e in deltas)
    assert events[-4]["text"] == text and events[-3]["part"]["text"] == text
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text
    assert final["output"][0]["id"] == events[2]["item"]["id"] == deltas[0]["item_id"]
    stored = (await http.get(f"/v1/responses/{final['id']}")).json()
    assert stored["output"] == final["output"]


async def test_sdk_stream_helper_assembles_the_response(http: httpx.AsyncClient) -> None:
    async with sdk(http).responses.stream(
        model=MODEL,
        input="Is it raining? Answer in JSON.",
        text={"format": BOOLEAN_OBJECT},  # type: ignore[typeddict-item]
        max_output_tokens=30,
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert set(json.loads(final.output_text)) == {"ok"}


async def test_retrieve_delete_and_page_the_input_items(http: httpx.AsyncClient) -> None:
    client = sdk(http)
    items = [{"role": role, "content": f"Item {i}."} for i, role in enumerate(["user", "assistant", "user"])]
    created = await client.responses.create(input=items, **CHEAP)  # type: ignore[arg-type]
    retrieved = await client.responses.retrieve(created.id)
    assert retrieved.model_dump() == created.model_dump()
    first = await client.responses.input_items.list(created.id, limit=2, order="asc")
    assert [i.content[0].text for i in first.data] == ["Item 0.", "Item 1."]  # type: ignore[union-attr]
    assert first.has_more
    rest = await client.responses.input_items.list(created.id, limit=2, order="asc", after=first.data[-1].id)
    assert [i.content[0].text for i in rest.data] == ["Item 2."] and not rest.has_more  # type: ignore[union-attr]
    newest = await client.responses.input_items.list(created.id, limit=1)  # desc by default
    assert newest.data[0].content[0].text == "Item 2."  # type: ignore[union-attr]
    deleted = await http.delete(f"/v1/responses/{created.id}")
    assert deleted.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(created.id)
    assert (await http.delete(f"/v1/responses/{created.id}")).status_code == 404


async def test_previous_response_id_continues_the_conversation(http: httpx.AsyncClient) -> None:
    client = sdk(http)
    first = await client.responses.create(input="My name is Ada.", instructions="Be kind.", **CHEAP)  # type: ignore[arg-type]
    second = await client.responses.create(
        input="What is my name?",
        previous_response_id=first.id,
        **CHEAP,  # type: ignore[arg-type]
    )
    # The earlier turn comes before the new input; the earlier instructions do not carry over.
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.usage is not None
    assert second.usage.input_tokens == await tokens_of(http, history)
    assert second.previous_response_id == first.id
    items = await client.responses.input_items.list(second.id, order="asc")
    assert [i.id for i in items.data][1] == first.output[0].id
    assert [i.role for i in items.data] == ["user", "assistant", "user"]  # type: ignore[union-attr]


async def test_stored_responses_belong_to_the_key_that_made_them(engine: Engine, tmp_path: Path) -> None:
    store = tmp_path / "responses.sqlite3"
    async with app_client(engine, api_keys=[f"alice:{ALICE}", BOB], responses_store_path=store) as http:
        alice, bob = sdk(http, ALICE), sdk(http, BOB)
        made = await alice.responses.create(input="A secret.", **CHEAP)  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError):
            await bob.responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.input_items.list(made.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError) as refused:
            await bob.responses.create(input="Go on.", previous_response_id=made.id, **CHEAP)  # type: ignore[arg-type]
        assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]
        assert (await alice.responses.retrieve(made.id)).id == made.id


async def test_store_false_keeps_nothing(http: httpx.AsyncClient) -> None:
    client = sdk(http)
    response = await client.responses.create(input="Forget this.", store=False, **CHEAP)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)


NEUTRAL = {
    "tools": [],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "truncation": "disabled",
    "include": [],
    "service_tier": "auto",
    "reasoning": None,
    "background": False,
    "top_logprobs": 0,
    "metadata": {"k": "v"},
}


async def test_defaults_of_fields_not_served_are_accepted(http: httpx.AsyncClient) -> None:
    raw = await http.post("/v1/responses", json={"input": "x", **CHEAP, **NEUTRAL})
    assert raw.status_code == 200, raw.text
    assert raw.json()["metadata"] == {"k": "v"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input.0"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input.0"),
        ({"input": "x", "top_logprobs": 5}, "top_logprobs"),
        ({"input": "x", "reasoning": {"effort": "high"}}, "reasoning"),
        ({"input": "x", "frobnicate": 1}, "frobnicate"),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "no spaces", "schema": {}}}},
            "text",
        ),
        ({"input": "x", "text": {"verbosity": "low"}}, "text.verbosity"),
        ({"input": "x", "max_output_tokens": 100_000}, "max_output_tokens"),
        ({"input": [{"role": "assistant", "content": "I start."}]}, "input"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    raw = await client.post("/v1/responses", json=body)
    assert raw.status_code == 400, raw.text
    assert raw.json()["error"]["param"].startswith(param), raw.json()


async def test_unknown_previous_response_is_a_404(client: httpx.AsyncClient) -> None:
    raw = await client.post(
        "/v1/responses", json={"input": "x", "previous_response_id": "resp_none", **CHEAP}
    )
    assert raw.status_code == 404
    assert raw.json()["error"]["param"] == "previous_response_id"


async def test_a_stream_past_its_deadline_fails_in_sequence(engine: Engine, tmp_path: Path) -> None:
    store = tmp_path / "responses.sqlite3"
    async with app_client(engine, request_timeout=0.3, responses_store_path=store) as http:
        raw = await http.post(
            "/v1/responses", json={"input": "Go on and on.", "stream": True, "max_output_tokens": 900}
        )
    events = sse_events(raw.text)
    for event in events:
        check_spec(EVENTS[event["type"]], event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "request_timeout"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    written = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert failed["output"][0]["content"][0]["text"] == written


async def test_the_routes_are_documented_with_their_errors(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    create = paths["/v1/responses"]["post"]["responses"]
    assert {"400", "401", "404", "429", "503", "504"} <= set(create)
    assert set(create["200"]["content"]) == {"application/json", "text/event-stream"}
    stored = paths["/v1/responses/{response_id}"]
    assert "404" in stored["get"]["responses"] and "404" in stored["delete"]["responses"]
    assert "404" in paths["/v1/responses/{response_id}/input_items"]["get"]["responses"]
