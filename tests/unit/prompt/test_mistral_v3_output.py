"""Tool calls parsed from a v3 model's output, whole and streamed (cut at every character)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from server.engine.tiny import write_mistral_v3_tokenizer
from server.prompt.mistral_v3 import CALL_ID
from server.prompt.mistral_v3_output import V3OutputParser, new_call_id, parse_v3_ids, parse_v3_output
from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import ToolCall


def counter() -> Callable[[], str]:
    numbers = itertools.count()
    return lambda: f"id{next(numbers):07d}"


def whole(text: str) -> tuple[str, list[ToolCall]]:
    return parse_v3_output(text, counter())


def streamed(pieces: list[str]) -> tuple[str, list[ToolCall]]:
    parser = V3OutputParser(counter())
    deltas = [parser.feed(p) for p in pieces] + [parser.finish()]
    return "".join(d.content for d in deltas), [c for d in deltas for c in d.tool_calls]


WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris", "note": "a ] } [ \\" \\\\ 猫"}}'
TIME = '{"name": "get_time", "arguments": {}}'

OUTPUTS: dict[str, tuple[str, str, list[tuple[str, dict[str, object]]]]] = {
    "plain_text": ("Hello there!", "Hello there!", []),
    "text_that_starts_like_the_marker": (
        "[TOOL_CALL] is not it; [1, 2]",
        "[TOOL_CALL] is not it; [1, 2]",
        [],
    ),
    "one_call": (
        f"[TOOL_CALLS] [{WEATHER}]",
        "",
        [("get_weather", {"city": "Paris", "note": 'a ] } [ " \\ 猫'})],
    ),
    "parallel_calls": (f"[TOOL_CALLS][{WEATHER}, {TIME}]", "", [("get_weather", None), ("get_time", {})]),
    "one_object_without_a_list": (f"[TOOL_CALLS] {TIME}", "", [("get_time", {})]),
    "whitespace_around_is_dropped": (f" \n[TOOL_CALLS] [{TIME}]\n ", "", [("get_time", {})]),
    "text_before_the_calls": (f"Let me check. [TOOL_CALLS] [{TIME}]", "Let me check. ", [("get_time", {})]),
    "text_after_the_calls": (f"[TOOL_CALLS] [{TIME}] Done.", " Done.", [("get_time", {})]),
    "two_call_blocks": (
        f"[TOOL_CALLS] [{TIME}][TOOL_CALLS] [{WEATHER}]",
        "",
        [("get_time", {}), ("get_weather", None)],
    ),
    "arguments_as_json_text": (
        '[TOOL_CALLS] [{"name": "f", "arguments": "{\\"x\\": 1}"}]',
        "",
        [("f", {"x": 1})],
    ),
    "truncated_list_is_text": (f"[TOOL_CALLS] [{WEATHER[:30]}", f" [{WEATHER[:30]}", []),
    "invalid_json_is_text": ("[TOOL_CALLS] [{name: f}] ok", " [{name: f}] ok", []),
    "not_json_at_all_is_text": ("[TOOL_CALLS] sorry, no.", " sorry, no.", []),
    "a_call_without_a_name_is_text": ('[TOOL_CALLS] [{"arguments": {}}]', ' [{"arguments": {}}]', []),
    "empty_list_is_text": ("[TOOL_CALLS] []", " []", []),
    "arguments_not_an_object_is_text": (
        '[TOOL_CALLS] [{"name": "f", "arguments": 3}]',
        ' [{"name": "f", "arguments": 3}]',
        [],
    ),
    "marker_spelled_partly_at_the_end": ("The end [TOOL_CA", "The end [TOOL_CA", []),
    "whitespace_only_answer": ("  \n", "  \n", []),
}


def _check(
    result: tuple[str, list[ToolCall]], content: str, expected: list[tuple[str, dict[str, object]]]
) -> None:
    got_content, calls = result
    assert got_content == content
    assert [c.name for c in calls] == [name for name, _ in expected]
    for call, (_, arguments) in zip(calls, expected, strict=True):
        if arguments is not None:
            assert json.loads(call.arguments) == arguments
    assert [c.id for c in calls] == [f"id{i:07d}" for i in range(len(calls))]


@pytest.mark.parametrize(("text", "content", "expected"), OUTPUTS.values(), ids=OUTPUTS.keys())
def test_whole_output(text: str, content: str, expected: list[tuple[str, dict[str, object]]]) -> None:
    _check(whole(text), content, expected)


@pytest.mark.parametrize(("text", "content", "expected"), OUTPUTS.values(), ids=OUTPUTS.keys())
def test_streamed_output_cut_anywhere_adds_up_to_the_whole(
    text: str, content: str, expected: list[tuple[str, dict[str, object]]]
) -> None:
    for cut in range(len(text) + 1):
        _check(streamed([text[:cut], text[cut:]]), content, expected)
    for a, b in itertools.combinations(range(1, len(text)), 2):
        if (a * 7 + b) % 5 == 0:  # a sample of the three-piece cuts
            _check(streamed([text[:a], text[a:b], text[b:]]), content, expected)
    _check(streamed(list(text)), content, expected)


def test_calls_are_handed_out_as_soon_as_their_list_closes() -> None:
    parser = V3OutputParser(counter())
    assert parser.feed("[TOOL_CALLS] [").tool_calls == ()
    assert parser.feed(TIME).tool_calls == ()
    assert [c.name for c in parser.feed("]").tool_calls] == ["get_time"]


def test_text_is_not_held_back_unless_it_may_begin_the_marker() -> None:
    parser = V3OutputParser()
    assert parser.feed("Hello").content == "Hello"
    assert parser.feed(" [TOOL").content == " "
    assert parser.feed("S]").content == "[TOOLS]"


def test_call_ids_are_nine_letters_or_digits_and_differ() -> None:
    ids = {new_call_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(CALL_ID.match(i) for i in ids)
    _, calls = parse_v3_output(f"[TOOL_CALLS] [{TIME}, {TIME}]")
    assert all(CALL_ID.match(c.id) for c in calls) and calls[0].id != calls[1].id


def test_ids_are_split_at_the_control_token_not_at_text(tmp_path: Path) -> None:
    write_mistral_v3_tokenizer(tmp_path, None)
    tokenizer = Tokenizer.load(tmp_path)
    marker = tokenizer.encode_rendered("[TOOL_CALLS]")
    assert len(marker) == 1
    ids = (
        tokenizer.encode_segment("Sure.")
        + marker
        + tokenizer.encode_segment(f"[{TIME}]")
        + [tokenizer.eos_id or 2]
    )
    content, calls = parse_v3_ids(ids, tokenizer, counter())
    assert (content, [c.name for c in calls]) == ("Sure.", ["get_time"])
    spelled = tokenizer.encode_segment(f"[TOOL_CALLS] [{TIME}]")  # the marker as plain text pieces
    assert marker[0] not in spelled
    assert parse_v3_ids(spelled, tokenizer, counter())[1] == []
