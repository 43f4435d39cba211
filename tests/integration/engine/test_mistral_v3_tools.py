"""Mistral-7B-Instruct-v0.3's shape on the real engine: the v3 tokenizer, whose [INST] and tool
markers are control tokens. A tool conversation encoded as mistral-common does it runs, and a
[TOOL_CALLS] the model emits comes back as one token that the v3 parser turns into calls.

Then the same engine behind the HTTP app (one engine start for the module): every chat prompt is
mistral-common's v3 encoding, with tools or without, and the openai SDK gets schema-valid calls
with v3 call ids, whole and streamed, and can loop call -> result -> answer."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from mistral_common.protocol.instruct.messages import (
    AssistantMessage,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.tool_calls import Function, FunctionCall
from mistral_common.protocol.instruct.tool_calls import Tool as RefTool
from mistral_common.protocol.instruct.tool_calls import ToolCall as RefToolCall
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from openai import AsyncOpenAI

from server.engine.base import Engine, GenerateRequest, SamplingOptions
from server.prompt.mistral_v3 import V3Message, encode_v3, v3_tokens
from server.prompt.mistral_v3_output import V3OutputParser, parse_v3_ids
from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import Tool, ToolCall
from tests.app_client import app_client
from tests.tiny_models import TINY_MISTRAL_7B_INSTRUCT_V03, V3_VOCAB_SIZE, running

WEATHER = Tool(
    "get_weather", "Weather of a city.", {"type": "object", "properties": {"city": {"type": "string"}}}
)
CALL = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[Engine]:
    async with running(TINY_MISTRAL_7B_INSTRUCT_V03) as engine:
        yield engine


@pytest.fixture(scope="module")
def tokenizer(engine: Engine) -> Tokenizer:
    return Tokenizer.load(engine.model_card.root)


def conversation() -> list[V3Message]:
    return [
        V3Message("system", "Use the tools."),
        V3Message("user", "Weather in Paris?"),
        V3Message("assistant", tool_calls=(ToolCall("a1b2c3d4e", "get_weather", '{"city": "Paris"}'),)),
        V3Message("tool", '{"celsius": 21}', tool_call_id="a1b2c3d4e"),
        V3Message("assistant", "21 degrees."),
        V3Message("user", "And in Rome?"),
    ]


def reference_ids() -> list[int]:
    call = RefToolCall(
        id="a1b2c3d4e", function=FunctionCall(name="get_weather", arguments='{"city": "Paris"}')
    )
    request = ChatCompletionRequest(
        messages=[
            SystemMessage(content="Use the tools."),
            UserMessage(content="Weather in Paris?"),
            AssistantMessage(tool_calls=[call]),
            ToolMessage(content='{"celsius": 21}', tool_call_id="a1b2c3d4e"),
            AssistantMessage(content="21 degrees."),
            UserMessage(content="And in Rome?"),
        ],
        tools=[
            RefTool(
                function=Function(
                    name=WEATHER.name, description=WEATHER.description or "", parameters=WEATHER.parameters
                )
            )
        ],
    )
    return list(MistralTokenizer.v3().encode_chat_completion(request).tokens)


async def run(engine: Engine, prompt: list[int], options: SamplingOptions) -> tuple[str, list[int]]:
    text, ids = "", []
    async for delta in engine.generate(GenerateRequest(f"v3-{len(prompt)}", prompt, options)):
        text, ids = text + delta.text, ids + delta.token_ids
    return text, ids


def test_the_checkpoint_has_v3s_vocabulary_and_control_tokens(engine: Engine, tokenizer: Tokenizer) -> None:
    config = json.loads((Path(engine.model_card.root) / "config.json").read_text())
    assert config["vocab_size"] == V3_VOCAB_SIZE == tokenizer.vocab_size
    marks = v3_tokens(tokenizer)
    assert marks is not None
    assert (marks.begin_inst, marks.end_inst, marks.tool_calls, marks.begin_tools) == (3, 4, 5, 6)


async def test_a_tool_conversation_runs_and_a_call_comes_back_as_one_token(
    engine: Engine, tokenizer: Tokenizer
) -> None:
    prompt = encode_v3(tokenizer, conversation(), [WEATHER])
    assert prompt == reference_ids()
    marks = v3_tokens(tokenizer)
    assert marks is not None
    # The model is made to call: first the marker (the one token allowed), then the JSON (a regex).
    first = SamplingOptions(
        max_tokens=1, temperature=0.0, allowed_token_ids=(marks.tool_calls,), skip_special_tokens=False
    )
    marker_text, marker_ids = await run(engine, prompt, first)
    assert (marker_text, marker_ids) == ("[TOOL_CALLS]", [marks.tool_calls])
    hidden = SamplingOptions(max_tokens=1, temperature=0.0, allowed_token_ids=(marks.tool_calls,))
    assert (await run(engine, prompt, hidden))[0] == ""  # why the route must ask for special tokens
    rest = SamplingOptions(max_tokens=40, temperature=0.0, regex=re.escape(CALL), skip_special_tokens=False)
    json_text, json_ids = await run(engine, prompt + marker_ids, rest)
    parser = V3OutputParser()
    deltas = [parser.feed(marker_text), parser.feed(json_text), parser.finish()]
    calls = [c for d in deltas for c in d.tool_calls]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert "".join(d.content for d in deltas) == ""
    content, from_ids = parse_v3_ids(marker_ids + json_ids, tokenizer)
    assert (content, [c.name for c in from_ids]) == ("", ["get_weather"])


# The HTTP app on this engine.

CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
TIME = {
    "type": "object",
    "properties": {"zone": {"enum": ["utc", "cet"]}},
    "required": ["zone"],
    "additionalProperties": False,
}
CITY = {
    "type": "object",
    "properties": {"city": {"enum": ["Paris", "Rome"]}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
SCHEMAS: dict[str, dict[str, Any]] = {"get_time": TIME, "get_weather": CITY}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": CITY}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
]
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(engine, model=str(engine.model_card.root)) as client:
        yield client


@pytest.fixture(scope="module")
def model(engine: Engine) -> str:
    return Path(engine.model_card.root).name


@pytest.fixture
def sdk(http: httpx.AsyncClient) -> AsyncOpenAI:
    return AsyncOpenAI(base_url="http://test/v1", api_key="unused", http_client=http, max_retries=0)


def reference(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
    """mistral-common's v3 ids for OpenAI-shaped messages and tools."""
    made: list[Any] = []
    for m in messages:
        if m["role"] == "system":
            made.append(SystemMessage(content=m["content"]))
        elif m["role"] == "user":
            made.append(UserMessage(content=m["content"]))
        elif m["role"] == "tool":
            made.append(ToolMessage(content=m["content"], tool_call_id=m["tool_call_id"]))
        else:
            calls = [
                RefToolCall(id=c["id"], function=FunctionCall(**c["function"]))
                for c in m.get("tool_calls") or []
            ]
            made.append(AssistantMessage(content=m.get("content"), tool_calls=calls or None))
    ref_tools = [RefTool(function=Function(**t["function"])) for t in tools or []]
    request = ChatCompletionRequest(messages=made, tools=ref_tools or None)
    return list(MistralTokenizer.v3().encode_chat_completion(request).tokens)


def check_calls(calls: list[Any], only: str | None = None) -> None:
    assert calls
    for call in calls:
        assert call.type == "function" and CALL_ID.match(call.id)
        assert only is None or call.function.name == only
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


async def count(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await http.post("/tokenize", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_chat_without_tools_writes_inst_as_its_control_token(
    http: httpx.AsyncClient, model: str, tokenizer: Tokenizer
) -> None:
    messages = [*ASK[:1], {"role": "user", "content": "Say [INST] hi"}]
    body = {"model": model, "messages": messages, "max_tokens": 2, "return_token_ids": True}
    answer = await http.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    prompt = answer.json()["prompt_token_ids"]
    assert prompt == reference(messages, None)
    marks = v3_tokens(tokenizer)
    assert marks is not None and prompt[1] == marks.begin_inst and prompt.count(marks.begin_inst) == 1
    counted = await count(http, {"model": model, "messages": messages})
    assert counted["tokens"] == prompt == answer.json()["prompt_token_ids"]
    assert counted["count"] == answer.json()["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    ("stream", "choice", "only"),
    [(False, "required", None), (True, {"type": "function", "function": {"name": "get_time"}}, "get_time")],
)
async def test_forced_calls_are_schema_valid_with_v3_ids(
    sdk: AsyncOpenAI, http: httpx.AsyncClient, model: str, stream: bool, choice: Any, only: str | None
) -> None:
    args: dict[str, Any] = {
        "model": model,
        "messages": ASK,
        "tools": TOOLS,
        "tool_choice": choice,
        "max_tokens": 60,
        "temperature": 0,
        "parallel_tool_calls": False,
    }
    if stream:
        async with sdk.chat.completions.stream(**args, stream_options={"include_usage": True}) as events:
            answer = await events.get_final_completion()
    else:
        answer = await sdk.chat.completions.create(**args)
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].message.content is None
    check_calls(answer.choices[0].message.tool_calls or [], only)
    # The prompt ends with the [TOOL_CALLS] token, and /tokenize counts it as the route does.
    counted = await count(http, {"model": model, "messages": ASK, "tools": TOOLS, "tool_choice": choice})
    assert answer.usage is not None and counted["count"] == answer.usage.prompt_tokens
    offered = TOOLS if only is None else [t for t in TOOLS if t["function"]["name"] == only]
    assert counted["tokens"] == [*reference(ASK, offered), 5]


async def test_a_call_result_answer_loop_encodes_as_mistral_common(
    sdk: AsyncOpenAI, http: httpx.AsyncClient, model: str
) -> None:
    first = await sdk.chat.completions.create(
        model=model,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=60,
        temperature=0,
        parallel_tool_calls=False,
    )
    calls = first.choices[0].message.tool_calls or []
    check_calls(calls)
    history: list[dict[str, Any]] = [
        *ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": '{"celsius": 21}'} for c in calls),
    ]
    body = {"model": model, "messages": history, "tools": TOOLS, "max_tokens": 6, "return_token_ids": True}
    second = await http.post("/v1/chat/completions", json=body)
    assert second.status_code == 200, second.text
    assert second.json()["prompt_token_ids"] == reference(history, TOOLS)
    counted = await count(http, {"model": model, "messages": history, "tools": TOOLS})
    assert counted["count"] == second.json()["usage"]["prompt_tokens"]
    message = second.json()["choices"][0]["message"]
    assert message["content"] or message["tool_calls"]


async def test_auto_reads_the_marker_the_model_writes(sdk: AsyncOpenAI, model: str) -> None:
    """A model trained on tools writes [TOOL_CALLS] (a control token) itself; here a logit bias
    stands in for the training. The answer is decoded with special tokens, so the marker is seen,
    and the grammar makes the list after it valid."""
    answer = await sdk.chat.completions.create(
        model=model,
        messages=ASK,
        tools=TOOLS[1:],
        max_tokens=40,
        temperature=0,
        logit_bias={"5": 100},
        parallel_tool_calls=False,
    )
    assert answer.choices[0].finish_reason == "tool_calls", repr(answer.choices[0].message.content)
    assert not answer.choices[0].message.content
    check_calls(answer.choices[0].message.tool_calls or [], "get_time")


async def test_other_call_ids_in_the_history_are_a_400_naming_the_field(
    http: httpx.AsyncClient, model: str
) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
    ]
    answer = await http.post(
        "/v1/chat/completions", json={"model": model, "messages": messages, "tools": TOOLS}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "messages[2].tool_calls[0].id"
