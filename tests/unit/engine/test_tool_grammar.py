"""tool_choice "auto"'s grammar, and forced calls after a marker token, checked with xgrammar's own
matcher (what the engine compiles)."""

from __future__ import annotations

import pytest
import xgrammar
from xgrammar.testing import _is_grammar_accept_string

from server.engine.base import LeadThenJson, TextOrJson
from server.engine.tool_grammar import lead_then_json_grammar, text_or_json_grammar
from server.errors import InvalidRequestError

SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {
            "name": {"const": "f"},
            "arguments": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    },
}
CALL = '[{"name": "f", "arguments": {"n": 3}}]'


@pytest.fixture(scope="module")
def grammar() -> xgrammar.Grammar:
    return xgrammar.Grammar.from_ebnf(
        text_or_json_grammar(TextOrJson("[TOOL_CALLS]", "[TOOL_CALLS] ", SCHEMA))
    )


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("plain words [with] brackets", True),
        ("", True),
        ("[TOOL", True),
        (f"[TOOL_CALLS] {CALL}", True),
        (f"Let me check. [TOOL_CALLS] {CALL}", True),
        (f"[[TOOL_CALLS] {CALL}", True),
        (f"[TOOL_CALLS] {CALL} and more", False),  # nothing after the calls
        ("[TOOL_CALLS] not json", False),  # the marker only starts valid calls
        ('[TOOL_CALLS] [{"name": "g", "arguments": {}}]', False),  # only offered tools
        ('[TOOL_CALLS] [ {"name": "f", "arguments": {"n": 3}}]', False),  # no free whitespace
    ],
)
def test_text_or_calls(grammar: xgrammar.Grammar, text: str, accepted: bool) -> None:
    assert _is_grammar_accept_string(grammar, text) is accepted


def test_a_schema_xgrammar_cannot_take_is_400_naming_tools() -> None:
    with pytest.raises(InvalidRequestError) as err:
        text_or_json_grammar(
            TextOrJson("[TOOL_CALLS]", "[TOOL_CALLS] ", {"type": "array", "items": {"$ref": "#/nope"}})
        )
    assert err.value.param == "tools"


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        (f" {CALL}", True),  # as a v3 model writes it after [TOOL_CALLS]: SentencePiece's "▁["
        (CALL, True),
        (f"  {CALL}", False),
        (f"x{CALL}", False),
        (f" {CALL} ", False),
        ("", False),
    ],
)
def test_forced_calls_take_an_optional_lead(text: str, accepted: bool) -> None:
    grammar = xgrammar.Grammar.from_ebnf(lead_then_json_grammar(LeadThenJson(" ", SCHEMA), "tool_choice"))
    assert _is_grammar_accept_string(grammar, text) is accepted


def test_a_forced_schema_xgrammar_cannot_take_is_400_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError) as err:
        lead_then_json_grammar(
            LeadThenJson(" ", {"type": "array", "items": {"$ref": "#/nope"}}), "tool_choice"
        )
    assert err.value.param == "tool_choice"
