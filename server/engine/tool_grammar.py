"""The grammar of tool_choice "auto": the model answers in words, or calls tools.

    root ::= text | text prefix calls

`text` is any text that does not contain the marker (`[TOOL_CALLS]`): written here as the states
of a matcher of the marker (how much of it the text ends in), so that the marker can only begin
the calls, and the calls, once begun, must be JSON following their schema, after which the output
ends. The calls' JSON comes from xgrammar's own JSON Schema compiler, compact as the rest of the
server's JSON (no free whitespace: a model that may write blanks can fill its budget with them),
joined to the text rules with xgrammar's grammar union and concatenation, and handed to vLLM as
EBNF text, its `grammar` structured output. This uses only what vLLM 0.26 (xgrammar 0.2.3) and
0.32 (xgrammar 0.2.8) both have; vLLM's `structural_tag` with triggers was the other candidate, but
its JSON allows any whitespace.

Forced calls on a checkpoint whose marker is a control token (Mistral v3) need no text rules: the
prompt ends with the marker token, and the answer is `(lead | "") calls`, the lead being the space
a trained model writes before its list (SentencePiece's "▁[").
"""

from __future__ import annotations

import json

import xgrammar

from server.engine.base import LeadThenJson, TextOrJson
from server.errors import InvalidRequestError

_CLASS_ESCAPES = str.maketrans({"]": "\\]", "[": "\\[", "-": "\\-", "^": "\\^"})


def _char_class(chars: str, negate: bool = False) -> str:
    """A character class of `chars`, each escaped as a JSON string escapes it, plus the class's own."""
    body = "".join(json.dumps(c)[1:-1].translate(_CLASS_ESCAPES) for c in chars)
    return f"[{'^' if negate else ''}{body}]"


def without(marker: str) -> str:
    """EBNF for any text that does not contain `marker`: rule t<i> means the text so far ends in
    the first i characters of the marker (the longest such), and no character may complete it."""
    alphabet = "".join(sorted(set(marker)))

    def after(matched: int, char: str) -> int:
        text = marker[:matched] + char
        while text and not marker.startswith(text):
            text = text[1:]
        return len(text)

    rules = ["root ::= t0"]
    for state in range(len(marker)):
        targets: dict[int, str] = {}
        for char in alphabet:
            nxt = after(state, char)
            if nxt < len(marker):
                targets[nxt] = targets.get(nxt, "") + char
        options = ['""', f"{_char_class(alphabet, negate=True)} t0"]
        options += [f"{_char_class(chars)} t{nxt}" for nxt, chars in sorted(targets.items())]
        rules.append(f"t{state} ::= " + " | ".join(options))
    return "\n".join(rules)


def _calls(schema: dict[str, object]) -> xgrammar.Grammar:
    return xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)


def text_or_json_grammar(spec: TextOrJson) -> str:
    """The EBNF text; a schema xgrammar cannot compile is the request's fault (the tools it offered)."""
    try:
        text = xgrammar.Grammar.from_ebnf(without(spec.marker))
        prefix = xgrammar.Grammar.from_ebnf(f"root ::= {json.dumps(spec.prefix)}")
        calls = _calls(spec.schema)
    except Exception as exc:  # xgrammar raises its own and RuntimeError for a schema it cannot take
        raise InvalidRequestError(f"tools: {exc}", param="tools") from exc
    grammar = xgrammar.Grammar.union(text, xgrammar.Grammar.concat(text, prefix, calls))
    return str(grammar)


def lead_then_json_grammar(spec: LeadThenJson, param: str) -> str:
    """`root ::= (lead | "") calls`, as EBNF text."""
    try:
        lead = xgrammar.Grammar.from_ebnf(f'root ::= {json.dumps(spec.lead)} | ""')
        calls = _calls(spec.schema)
    except Exception as exc:
        raise InvalidRequestError(f"{param}: {exc}", param=param) from exc
    return str(xgrammar.Grammar.concat(lead, calls))
