"""Tools in the Mixtral [INST] format as plain text, for tokenizers without Mistral's tool tokens
(Mixtral-8x7B-Instruct-v0.1's). The layout is Mistral's v3 one (mistral-common's
InstructTokenizerV3), with the control tokens written as text, each part encoded on its own as the
[INST] turns are:

    <s>[INST] u1 [/INST] a1</s>
    [AVAILABLE_TOOLS] [{"type": "function", "function": {...}}] [/AVAILABLE_TOOLS][INST] u2 [/INST]
    [TOOL_CALLS] [{"name": "f", "arguments": {...}, "id": "call_1"}]</s>
    [TOOL_RESULTS] {"content": ..., "call_id": "call_1"} [/TOOL_RESULTS]

(one line in the prompt: the line breaks here are for reading).
The tools go before the last user turn's [INST]; an assistant's calls are `[TOOL_CALLS]` and the
JSON list of {"name", "arguments", "id"}, then EOS; each result is its own `[TOOL_RESULTS]` block,
its content parsed as JSON where it is JSON; after the results the model answers. JSON is written
as Python's json.dumps does (", " and ": "), as mistral-common does. The system message stays where
the v1 format puts it, in front of the first user turn: the rest of this format is unchanged.
Mixtral-8x7B-Instruct-v0.1 was never trained on this layout; it is the one a Mistral model trained
on tools knows, so that one parser serves both.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import Tool, ToolCall

if TYPE_CHECKING:
    from server.prompt.template import Conversation, Turn

MARKER = "[TOOL_CALLS]"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _parsed(text: str) -> Any:
    """JSON text as its value, other text as itself (mistral-common's rule for arguments and results)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def tools_json(tools: list[Tool]) -> str:
    return _json(
        [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description or "", "parameters": t.parameters},
            }
            for t in tools
        ]
    )


def calls_json(calls: tuple[ToolCall, ...]) -> str:
    return _json([{"name": c.name, "arguments": _parsed(c.arguments), "id": c.id} for c in calls])


def result_json(turn: Turn) -> str:
    return _json({"content": _parsed(turn.text), "call_id": turn.tool_call_id})


class PlainTextTools:
    """The ToolFormat of tokenizers without tool tokens."""

    marker = MARKER
    call_prefix = MARKER + " "
    marker_is_token = False
    calls_lead: str | None = None  # forced calls are the bare JSON list (the engine's grammar)

    def new_call_id(self) -> str:
        return f"call_{uuid.uuid4().hex[:24]}"

    def render(
        self,
        conversation: Conversation,
        tools: list[Tool] | None,
        tokenizer: Tokenizer,
        continue_final: bool = False,
        open_calls: bool = False,  # noqa: ARG002 (forced calls are the bare list here: nothing to open)
    ) -> list[int]:
        ids: list[int] = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
        turns = conversation.turns
        users = [i for i, t in enumerate(turns) if t.role == "user"]
        first_user, last_user = (users[0], users[-1]) if users else (-1, -1)
        for i, turn in enumerate(turns):
            if turn.role == "user":
                text = turn.text
                if i == first_user and conversation.system:
                    text = f"{conversation.system}\n\n{text}"
                if i == last_user and tools:
                    ids += tokenizer.encode_segment(
                        f"[AVAILABLE_TOOLS] {tools_json(tools)} [/AVAILABLE_TOOLS]"
                    )
                ids += tokenizer.encode_segment(f"[INST] {text} [/INST]")
            elif turn.role == "tool":
                ids += tokenizer.encode_segment(f"[TOOL_RESULTS] {result_json(turn)} [/TOOL_RESULTS]")
            else:
                if turn.text:
                    ids += tokenizer.encode_segment(turn.text)
                if turn.tool_calls:
                    ids += tokenizer.encode_segment(f"{MARKER} {calls_json(turn.tool_calls)}")
                if tokenizer.eos_id is not None and not (continue_final and i == len(turns) - 1):
                    ids.append(tokenizer.eos_id)
        return ids
