"""tool_choice "auto"'s grammar, checked with xgrammar's own matcher (what the engine compiles)."""

from __future__ import annotations

import pytest
import xgrammar
from xgrammar.testing import _is_grammar_accept_string

from server.engine.base import TextOrJson
from server.engine.tool_grammar import text_or_json_grammar
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
