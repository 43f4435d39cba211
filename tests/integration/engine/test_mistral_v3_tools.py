"""Mistral-7B-Instruct-v0.3's shape on the real engine: the v3 tokenizer, whose [INST] and tool
markers are control tokens. A tool conversation encoded as mistral-common does it runs, and a
[TOOL_CALLS] the model emits comes back as one token that the v3 parser turns into calls."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

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

from server.engine.base import Engine, GenerateRequest, SamplingOptions
from server.prompt.mistral_v3 import V3Message, encode_v3, v3_tokens
from server.prompt.mistral_v3_output import V3OutputParser, parse_v3_ids
from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import Tool, ToolCall
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
