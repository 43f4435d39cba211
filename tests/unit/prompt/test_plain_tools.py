"""Tools as plain text in the [INST] format: the layout of mistral-common's v3 encoder, the
conversation rules once tools take part, and the reading of calls from the model's text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mistral_common.protocol.instruct.messages import AssistantMessage, ToolMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.tool_calls import Function, FunctionCall
from mistral_common.protocol.instruct.tool_calls import Tool as RefTool
from mistral_common.protocol.instruct.tool_calls import ToolCall as RefCall
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from server.engine.tiny import write_mistral_v1_tokenizer
from server.errors import InvalidRequestError
from server.prompt.template import ChatTemplate, Turn
from server.prompt.tokenizer import Tokenizer
from server.prompt.tool_parse import CallScanner
from server.prompt.tools import Tool, ToolCall

WEATHER = Tool(
    "get_weather", "The weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}}
)
CALL = ToolCall("abcdefghi", "get_weather", '{"city": "Paris"}')


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> ChatTemplate:
    directory: Path = tmp_path_factory.mktemp("mistral-v1-tokenizer")
    write_mistral_v1_tokenizer(directory)
    return ChatTemplate(Tokenizer.load(directory))


def _squash(text: str) -> str:
    return "".join(text.replace("▁", " ").split())


def test_layout_follows_mistral_common_v3(template: ChatTemplate) -> None:
    """The same parts in the same order as the v3 encoder's, its control tokens written as text."""
    ours = [
        Turn("user", "hi"),
        Turn("assistant", "yo"),
        Turn("user", "Weather in Paris?"),
        Turn("assistant", "", (CALL,)),
        Turn("tool", '{"temp": 3}', tool_call_id="abcdefghi"),
    ]
    ids = template.render(ours, tools=[WEATHER])
    reference = MistralTokenizer.v3().encode_chat_completion(
        ChatCompletionRequest(
            messages=[
                UserMessage(content="hi"),
                AssistantMessage(content="yo"),
                UserMessage(content="Weather in Paris?"),
                AssistantMessage(
                    tool_calls=[
                        RefCall(id=CALL.id, function=FunctionCall(name=CALL.name, arguments=CALL.arguments))
                    ]
                ),
                ToolMessage(content='{"temp": 3}', tool_call_id="abcdefghi"),
            ],
            tools=[
                RefTool(
                    function=Function(
                        name=WEATHER.name,
                        description=WEATHER.description or "",
                        parameters=WEATHER.parameters,
                    )
                )
            ],
        )
    )
    tokenizer = template._tokenizer
    text = "".join(tokenizer.pieces(ids))
    assert _squash(text) == _squash(reference.text)
    assert ids.count(tokenizer.eos_id) == 2  # after "yo" and after the calls, as in v3


def test_tools_only_before_the_last_user_turn_and_none_without_tools(template: ChatTemplate) -> None:
    history = [Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")]
    text = "".join(template._tokenizer.pieces(template.render(history, tools=[WEATHER])))
    assert text.index("[AVAILABLE_TOOLS]") > text.index("b") and text.count("[AVAILABLE_TOOLS]") == 1
    assert template.render(history, tools=[]) == template.render(history)


@pytest.mark.parametrize(
    ("turns", "param"),
    [
        ([Turn("user", "a"), Turn("tool", "r", tool_call_id="x")], "messages[1].role"),
        ([Turn("user", "a"), Turn("assistant", "", (CALL,))], "messages[1].role"),
        (
            [Turn("user", "a"), Turn("assistant", "", (CALL,)), Turn("tool", "r", tool_call_id="zz")],
            "messages[2].tool_call_id",
        ),
        (
            [Turn("user", "a"), Turn("assistant", "", (CALL,)), Turn("user", "b")],
            "messages[2].role",
        ),
    ],
)
def test_conversation_rules_with_tools(template: ChatTemplate, turns: list[Turn], param: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        template.render(turns, tools=[WEATHER])
    assert err.value.param == param


def test_results_then_a_user_turn_or_another_answer_are_allowed(template: ChatTemplate) -> None:
    base = [Turn("user", "a"), Turn("assistant", "", (CALL,)), Turn("tool", "r", tool_call_id=CALL.id)]
    template.render([*base, Turn("assistant", "done"), Turn("user", "more")], tools=[WEATHER])
    template.render([*base, Turn("user", "more")])


TEXT = (
    'Sure. [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "P\\"a}ris"}}, '
    '{"arguments": {"city": "Rome"}, "name": "get_weather"}]'
)


@pytest.mark.parametrize("step", [1, 2, 5, len(TEXT)])
def test_scanner_streams_what_the_whole_text_gives(step: int) -> None:
    scanner = CallScanner("[TOOL_CALLS]")
    shown, names, arguments = "", {}, {}
    for i in range(0, len(TEXT), step):
        text, pieces = scanner.feed(TEXT[i : i + step])
        shown += text
        for piece in pieces:
            if piece.name is not None:
                assert piece.index not in names
                names[piece.index] = piece.name
            assert piece.index in names  # a call's name comes before its arguments
            arguments[piece.index] = arguments.get(piece.index, "") + piece.arguments
    shown += scanner.finish()
    calls = scanner.calls([WEATHER])
    assert shown == "Sure. "
    assert calls == [(names[i], arguments[i]) for i in range(2)]
    assert [json.loads(a) for _, a in calls] == [{"city": 'P"a}ris'}, {"city": "Rome"}]


def test_text_that_only_looks_like_the_marker_is_shown_in_the_end() -> None:
    scanner = CallScanner("[TOOL_CALLS]")
    assert scanner.feed("a [TOOL") == ("a ", [])
    assert scanner.feed("S] b [TOO") == ("[TOOLS] b ", [])
    assert scanner.finish() == "[TOO"
    assert scanner.calls() is None


@pytest.mark.parametrize(
    "text",
    [
        '[{"name": "get_weather", "arguments": {"city": "P',
        '[{"name": "other", "arguments": {}}]',
        "[]",
        '{"name": "x"}',
    ],
)
def test_cut_off_or_unknown_calls_are_none(text: str) -> None:
    scanner = CallScanner(None)
    scanner.feed(text)
    assert scanner.calls([WEATHER]) is None


def test_arguments_sent_as_a_json_string_are_decoded() -> None:
    scanner = CallScanner(None)
    _, pieces = scanner.feed(json.dumps([{"name": "get_weather", "arguments": '{"city": "Oslo"}'}]))
    assert "".join(p.arguments for p in pieces) == '{"city": "Oslo"}'
    assert scanner.calls([WEATHER]) == [("get_weather", '{"city": "Oslo"}')]
