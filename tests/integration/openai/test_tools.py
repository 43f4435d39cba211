"""Tool calling on the real engine: the grammar makes the tiny noise model's calls valid, and the
openai SDK and LangChain read them, whole and streamed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_PARAMS = {
    "type": "object",
    "properties": {"zone": {"enum": ["utc", "cet"]}},
    "required": ["zone"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS},
    },
    {"type": "function", "function": {"name": "get_time", "parameters": TIME_PARAMS}},
]
SCHEMAS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
NAMED = {"type": "function", "function": {"name": "get_time"}}


@pytest.fixture
def sdk(client: httpx.AsyncClient) -> AsyncOpenAI:
    return AsyncOpenAI(base_url="http://test/v1", api_key="unused", http_client=client, max_retries=0)


def _check_calls(calls: list[Any], only: str | None = None) -> None:
    assert calls
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in SCHEMAS and (only is None or call.function.name == only)
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


@pytest.mark.parametrize(("choice", "only"), [("required", None), (NAMED, "get_time")])
async def test_required_and_named_give_schema_valid_calls(
    sdk: AsyncOpenAI, choice: Any, only: str | None
) -> None:
    answer = await sdk.chat.completions.create(
        model="tiny-mixtral",
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice=choice,
        max_tokens=120,
        temperature=0,
        parallel_tool_calls=False,
    )
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    _check_calls(message.tool_calls or [], only)
    if only is not None:
        assert len(message.tool_calls or []) == 1


@pytest.mark.parametrize(("choice", "only"), [("required", None), (NAMED, "get_time")])
async def test_streamed_calls_assemble_in_the_sdk(sdk: AsyncOpenAI, choice: Any, only: str | None) -> None:
    async with sdk.chat.completions.stream(
        model="tiny-mixtral",
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice=choice,
        max_tokens=120,
        temperature=0,
        parallel_tool_calls=False,
    ) as stream:
        chunks = [event async for event in stream if event.type == "chunk"]
        final = await stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    _check_calls(final.choices[0].message.tool_calls or [], only)
    firsts = [tc for c in chunks for ch in c.chunk.choices for tc in ch.delta.tool_calls or [] if tc.id]
    assert all(tc.function and tc.function.name and tc.type == "function" for tc in firsts)
    whole = await sdk.chat.completions.create(
        model="tiny-mixtral",
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice=choice,
        max_tokens=120,
        temperature=0,
        parallel_tool_calls=False,
    )

    def named(calls: Any) -> list[tuple[str, str]]:
        return [(c.function.name, c.function.arguments) for c in calls or []]

    assert named(final.choices[0].message.tool_calls) == named(whole.choices[0].message.tool_calls)


@pytest.mark.parametrize("stream", [False, True])
async def test_auto_answers_in_text_or_valid_calls(sdk: AsyncOpenAI, stream: bool) -> None:
    args: dict[str, Any] = {
        "model": "tiny-mixtral",
        "messages": MESSAGES,
        "tools": TOOLS,
        "max_tokens": 24,
        "seed": 3,
    }
    if stream:  # the SDK's stream helper refuses a length finish: the chunks by hand
        chunks = [c async for c in await sdk.chat.completions.create(**args, stream=True)]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
        reason = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    else:
        answer = await sdk.chat.completions.create(**args)
        content, calls = answer.choices[0].message.content or "", answer.choices[0].message.tool_calls or []
        reason = answer.choices[0].finish_reason
    if calls:  # a noise model rarely writes the 7 tokens of the marker; the grammar makes them valid
        assert reason == "tool_calls"
    else:
        assert content and "[TOOL_CALLS]" not in content
        assert reason in ("stop", "length")


async def test_two_steps_call_result_answer(sdk: AsyncOpenAI, client: httpx.AsyncClient) -> None:
    first = await sdk.chat.completions.create(
        model="tiny-mixtral",
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=120,
        temperature=0,
        parallel_tool_calls=False,
    )
    calls = first.choices[0].message.tool_calls or []
    history: list[Any] = [
        *MESSAGES,
        first.choices[0].message.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": '{"temp": 21}'} for c in calls),
    ]
    second = await sdk.chat.completions.create(
        model="tiny-mixtral", messages=history, tools=TOOLS, tool_choice="none", max_tokens=6, temperature=0
    )
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls
    counted = (
        await client.post("/tokenize", json={"messages": history, "tools": TOOLS, "tool_choice": "none"})
    ).json()
    assert counted["count"] == second.usage.prompt_tokens  # type: ignore[union-attr]
    with_tools = (await client.post("/tokenize", json={"messages": history, "tools": TOOLS})).json()
    again = await sdk.chat.completions.create(
        model="tiny-mixtral", messages=history, tools=TOOLS, max_tokens=1
    )
    assert with_tools["count"] == again.usage.prompt_tokens > counted["count"]  # type: ignore[union-attr]


async def test_langchain_bind_tools_and_a_tool_loop(client: httpx.AsyncClient) -> None:
    llm = ChatOpenAI(
        base_url="http://test/v1",
        api_key="unused",
        model="tiny-mixtral",
        max_tokens=120,
        temperature=0,
        max_retries=0,
        http_async_client=client,
    )
    bound = llm.bind_tools([TOOLS[0]], tool_choice="required", parallel_tool_calls=False)
    message = await bound.ainvoke([HumanMessage("Weather in Paris?")])
    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"
    jsonschema.validate(message.tool_calls[0]["args"], WEATHER_PARAMS)
    results = [ToolMessage('{"temp": 21}', tool_call_id=call["id"]) for call in message.tool_calls]
    answer = await llm.bind(max_tokens=6).ainvoke([HumanMessage("Weather in Paris?"), message, *results])
    assert isinstance(answer.content, str) and answer.content


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
            "tools.0.function.parameters",
        ),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools.0.function.name"),
        (
            {
                "messages": [
                    *MESSAGES,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "get_time", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "content": "3"},
                ]
            },
            "messages[2].tool_call_id",
        ),
        ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
        ({"functions": [{"name": "f"}]}, "functions"),
    ],
)
async def test_bad_tool_input_is_400_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], param: str
) -> None:
    body = {"model": "tiny-mixtral", "messages": MESSAGES, "max_tokens": 2, **change}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
