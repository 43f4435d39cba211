"""The v3 format with tools against mistral-common's reference encoder, token for token."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from mistral_common.exceptions import MistralCommonException
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

from server.engine.tiny import write_mistral_v1_tokenizer, write_mistral_v3_tokenizer
from server.errors import InvalidRequestError
from server.prompt.mistral_v3 import V3_CONTROL_TOKENS, V3Message, encode_v3, has_v3_tool_tokens
from server.prompt.template import ChatTemplate, Turn
from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import Tool, ToolCall
from tests.tiny_models import MISTRAL_V3_TEXT_TEMPLATE


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    directory = tmp_path_factory.mktemp("mistral-v3-tokenizer")
    write_mistral_v3_tokenizer(directory, MISTRAL_V3_TEXT_TEMPLATE)
    return Tokenizer.load(directory)


@pytest.fixture(scope="module")
def reference() -> MistralTokenizer:
    return MistralTokenizer.v3()


WEATHER = Tool(
    "get_weather",
    "Current weather of a city.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)
TIME = Tool("get_time", None, {"type": "object", "properties": {"zone": {"type": "string"}}})
TRANSLATE = Tool("traduire", "Traduit un texte — en français ou 中文.", {"type": "object", "properties": {}})


def user(text: str) -> V3Message:
    return V3Message("user", text)


def system(text: str) -> V3Message:
    return V3Message("system", text)


def answer(text: str) -> V3Message:
    return V3Message("assistant", text)


def calls(*pairs: tuple[str, str, str]) -> V3Message:
    return V3Message("assistant", tool_calls=tuple(ToolCall(i, n, a) for i, n, a in pairs))


def result(call_id: str, text: str) -> V3Message:
    return V3Message("tool", text, tool_call_id=call_id)


def reference_ids(
    reference: MistralTokenizer, messages: list[V3Message], tools: list[Tool] | None, continue_final: bool
) -> list[int]:
    converted: list[Any] = []
    for i, m in enumerate(messages):
        if m.role == "system":
            converted.append(SystemMessage(content=m.text))
        elif m.role == "user":
            converted.append(UserMessage(content=m.text))
        elif m.role == "tool":
            converted.append(ToolMessage(content=m.text, tool_call_id=m.tool_call_id))
        else:
            ref_calls = [
                RefToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
                for c in m.tool_calls
            ]
            converted.append(
                AssistantMessage(
                    content=m.text or None,
                    tool_calls=ref_calls or None,
                    prefix=continue_final and i == len(messages) - 1,
                )
            )
    ref_tools = [
        RefTool(function=Function(name=t.name, description=t.description or "", parameters=t.parameters))
        for t in tools or []
    ]
    request = ChatCompletionRequest(messages=converted, tools=ref_tools or None)
    return list(reference.encode_chat_completion(request).tokens)


ONE_CALL = [
    user("What's the weather in Paris?"),
    calls(("abcDEF123", "get_weather", '{"city": "Paris", "unit": "celsius"}')),
    result("abcDEF123", '{"temperature": 21, "sky": "clear"}'),
]
PARALLEL = [
    system("You are a weather bot."),
    user("Weather in Paris and the time in Tokyo?"),
    calls(
        ("aaaaaaaa1", "get_weather", '{"city":"Paris"}'),
        ("bbbbbbbb2", "get_time", '{"zone": "Asia/Tokyo"}'),
    ),
    result("aaaaaaaa1", "21 degrees"),
    result("bbbbbbbb2", '"09:30"'),
]
CASES: dict[str, tuple[list[V3Message], list[Tool] | None, bool]] = {
    "no_tools_one_turn": ([user("Hello, who are you?")], None, False),
    "no_tools_several_turns": (
        [
            user("Capital of France?"),
            answer("Paris."),
            user("And of Germany?"),
            answer("Berlin."),
            user("Bigger?"),
        ],
        None,
        False,
    ),
    "system_goes_before_the_last_user_message": (
        [system("Be terse."), user("u1"), answer("a1"), user("u2")],
        None,
        False,
    ),
    "several_system_messages_anywhere": (
        [system("One."), user("u1"), system(""), answer("a1"), user("u2"), system("Two."), user("u3")],
        None,
        False,
    ),
    "consecutive_user_messages_merge": ([user("first"), user(""), user("second")], None, False),
    "tools_and_a_question": ([user("Weather in Paris?")], [WEATHER, TIME], False),
    "one_call_and_its_result": (ONE_CALL, [WEATHER], False),
    "one_call_result_and_answer_then_a_new_question": (
        [*ONE_CALL, answer("It is 21 degrees and clear in Paris."), user("And tomorrow?")],
        [WEATHER],
        False,
    ),
    "parallel_calls": (PARALLEL, [WEATHER, TIME], False),
    "tools_offered_later_in_the_conversation": (
        [user("Hi"), answer("Hello! How can I help?"), user("Translate 'cat'."), system("Use tools.")],
        [TRANSLATE],
        False,
    ),
    "tool_history_before_the_last_user_message": (
        [*PARALLEL, answer("Sunny, 09:30."), user("Thanks. And in Rome?")],
        [WEATHER, TIME],
        False,
    ),
    "continue_the_answer_after_a_result": (
        [*ONE_CALL, answer("In Paris it is")],
        [WEATHER],
        True,
    ),
    "continue_without_tools": ([user("Count to five."), answer("1, 2, 3,")], None, True),
    "odd_arguments_and_results": (
        [
            user("x"),
            calls(("Zz0000000", "get_weather", ""), ("Zz0000001", "get_weather", "not json")),
            result("Zz0000000", ""),
            result("Zz0000001", "[1, 2.5, null, true]"),
        ],
        [WEATHER],
        False,
    ),
    "non_ascii_and_control_token_spellings_stay_text": (
        [
            user("Grüße [TOOL_CALLS] [INST] 你好 🙂"),
            calls(("q1w2e3r4t", "traduire", '{"texte": "chat — 猫"}')),
            result("q1w2e3r4t", '{"résultat": "猫 [/TOOL_RESULTS]"}'),
        ],
        [TRANSLATE],
        False,
    ),
    "answer_with_trailing_spaces": ([user("u"), answer("a  \n  "), user("v")], None, False),
    "conversation_opened_by_the_assistant": ([system("S"), answer("Hi!"), user("Hello")], None, False),
}


@pytest.mark.parametrize(("messages", "tools", "continue_final"), CASES.values(), ids=CASES.keys())
def test_encode_v3_matches_mistral_commons_v3_ids(
    tokenizer: Tokenizer,
    reference: MistralTokenizer,
    messages: list[V3Message],
    tools: list[Tool] | None,
    continue_final: bool,
) -> None:
    ours = encode_v3(tokenizer, messages, tools, continue_final=continue_final)
    assert ours == reference_ids(reference, messages, tools, continue_final)


def test_the_tool_markers_are_single_control_tokens(
    tokenizer: Tokenizer, reference: MistralTokenizer
) -> None:
    assert has_v3_tool_tokens(tokenizer)
    ids = {text: i for i, text in tokenizer.control_tokens.items()}
    raw = reference.instruct_tokenizer.tokenizer
    for text in V3_CONTROL_TOKENS:
        assert ids[text] == raw.get_special_token(text)
        assert tokenizer.encode_rendered(text) == [ids[text]]  # markup: one id
        assert ids[text] not in tokenizer.encode_segment(text)  # message text: plain text
    assert tokenizer.vocab_size == 32768


def test_a_v1_tokenizer_has_no_v3_tool_tokens(tmp_path: Path) -> None:
    write_mistral_v1_tokenizer(tmp_path)
    v1 = Tokenizer.load(tmp_path)
    assert not has_v3_tool_tokens(v1)
    with pytest.raises(InvalidRequestError):
        encode_v3(v1, [user("hi")])


def test_the_tiny_models_text_template_renders_mistral_commons_ids_without_tools(
    tokenizer: Tokenizer, reference: MistralTokenizer
) -> None:
    """The jinja path, for text conversations, agrees with the encoder."""
    template = ChatTemplate(tokenizer)
    for messages, tools, continue_final in CASES.values():
        if tools or continue_final or any(m.role == "tool" for m in messages) or messages[0].role != "user":
            continue
        if any(a.role == b.role for a, b in zip(messages, messages[1:], strict=False)):
            continue
        turns = [Turn(m.role, m.text) for m in messages]  # type: ignore[arg-type]
        text = tokenizer.jinja_text(
            [{"role": t.role, "content": t.text} for t in turns], template._jinja or ""
        )
        assert tokenizer.encode_rendered(text) == reference_ids(reference, messages, None, False), messages


def test_chat_on_a_v3_tokenizer_is_mistral_commons_encoding(
    tokenizer: Tokenizer, reference: MistralTokenizer
) -> None:
    """The template's [INST] text is detected, but with v3 control tokens every conversation the
    chat rules accept, with tools or without, is encoded as mistral-common does it."""
    template = ChatTemplate(tokenizer)
    assert template.source == "mistral-v3" and template.tool_format is not None
    rendered = 0
    for messages, tools, continue_final in CASES.values():
        turns = [Turn(m.role, m.text, m.tool_calls, m.tool_call_id) for m in messages]
        try:
            ids = template.render(turns, tools=tools, continue_final=continue_final)
        except InvalidRequestError:
            continue  # OpenAI's order rules are stricter than mistral-common's
        assert ids == reference_ids(reference, messages, tools, continue_final), messages
        rendered += 1
    assert rendered >= 5
    forced = template.render([Turn("user", "hi")], tools=[WEATHER], open_calls=True)
    assert forced == [*reference_ids(reference, [user("hi")], [WEATHER], False), 5]


# --- random conversations -------------------------------------------------------------------------

_WORDS = ["Paris", " rain", "\n\n", "  ", "é", "猫", "🙂", "[INST]", "</s>", "{", '"x"', "42", "", " a b "]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 5)))


def _call_id(rng: random.Random) -> str:
    return "".join(rng.choice("abcXYZ0189") for _ in range(9))


def _arguments(rng: random.Random) -> str:
    return rng.choice(
        [json.dumps({"city": rng.choice(["Paris", "Zürich", ""])}), "{}", "", "[1,2]", "oops", '{"n":1.50}']
    )


def _conversation(rng: random.Random) -> tuple[list[V3Message], list[Tool] | None, bool]:
    messages: list[V3Message] = []
    if rng.random() < 0.4:
        messages.append(system(_text(rng) or "S"))
    for _ in range(rng.randint(1, 4)):
        messages.append(user(_text(rng)))
        if rng.random() < 0.2:
            messages.append(system(_text(rng)))
        if rng.random() < 0.5:
            made = [
                (_call_id(rng), rng.choice(["get_weather", "get_time"]), _arguments(rng))
                for _ in range(rng.randint(1, 3))
            ]
            messages.append(calls(*made))
            messages += [result(i, rng.choice([_text(rng), '{"ok": true}', "7"])) for i, _, _ in made]
        messages.append(answer(_text(rng) + "x"))
    continue_final = rng.random() < 0.3
    if not continue_final:
        messages.append(user(_text(rng)))
    tools = rng.choice([None, [], [WEATHER], [WEATHER, TIME, TRANSLATE]])
    return messages, tools, continue_final


def test_random_conversations_match_mistral_common(tokenizer: Tokenizer, reference: MistralTokenizer) -> None:
    rng = random.Random(19)
    for _ in range(300):
        messages, tools, continue_final = _conversation(rng)
        ours = encode_v3(tokenizer, messages, tools, continue_final=continue_final)
        assert ours == reference_ids(reference, messages, tools, continue_final), messages


# --- what mistral-common refuses, refused as a 400 naming the field -------------------------------

REFUSED: dict[str, tuple[list[V3Message], bool, str]] = {
    "call_id_not_nine_alphanumerics": (
        [user("q"), calls(("call_abc123", "get_weather", "{}")), result("call_abc123", "1")],
        False,
        "messages[1].tool_calls[0].id",
    ),
    "result_id_not_nine_alphanumerics": (
        [user("q"), calls(("abcdefghi", "get_weather", "{}")), result("abc", "1")],
        False,
        "messages[2].tool_call_id",
    ),
    "ends_with_an_answer": ([user("q"), answer("a")], False, "messages[1].role"),
    "tool_result_after_a_user_message": ([user("q"), result("abcdefghi", "1")], False, "messages[1].role"),
    "missing_tool_result": (
        [user("q"), calls(("abcdefghi", "get_weather", "{}")), answer("a"), user("r")],
        False,
        "messages[2]",
    ),
    "bad_function_name": (
        [user("q"), calls(("abcdefghi", "get weather", "{}")), result("abcdefghi", "1")],
        False,
        "messages[1].tool_calls[0].function.name",
    ),
    "empty_answer": ([user("q"), answer(""), user("r")], False, "messages[1].content"),
    "answer_merged_with_calls": (
        [user("q"), answer("a"), calls(("abcdefghi", "get_weather", "{}")), result("abcdefghi", "1")],
        False,
        "messages",
    ),
}


@pytest.mark.parametrize(("messages", "continue_final", "param"), REFUSED.values(), ids=REFUSED.keys())
def test_conversations_mistral_common_refuses_are_a_400(
    tokenizer: Tokenizer,
    reference: MistralTokenizer,
    messages: list[V3Message],
    continue_final: bool,
    param: str,
) -> None:
    with pytest.raises((MistralCommonException, ValueError, AssertionError)):
        reference_ids(reference, messages, [WEATHER], continue_final)
    with pytest.raises(InvalidRequestError) as refused:
        encode_v3(tokenizer, messages, [WEATHER], continue_final=continue_final)
    assert refused.value.param == param


def test_a_tool_with_a_bad_name_is_a_400_naming_it(tokenizer: Tokenizer) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        encode_v3(tokenizer, [user("q")], [WEATHER, Tool("no spaces allowed")])
    assert refused.value.param == "tools[1].function.name"


def test_continuing_needs_an_assistant_message_last(tokenizer: Tokenizer) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        encode_v3(tokenizer, [user("q"), answer("a"), user("r")], continue_final=True)
    assert refused.value.param == "messages[2].role"
