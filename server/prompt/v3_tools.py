"""The ToolFormat of tokenizers with Mistral's v3 control tokens (Mistral-7B-Instruct-v0.3,
Mixtral-8x22B-Instruct-v0.1): every chat prompt of such a checkpoint, with tools or without, is
encoded by server/prompt/mistral_v3.py, id for id as mistral-common's v3 encoder does it.

The model calls tools by writing the `[TOOL_CALLS]` control token and then the JSON list, as
" [...]" (the list's first piece carries SentencePiece's space). When the calls are forced
(tool_choice "required" or a named function) the prompt ends with that token, so the model
starts right where a trained model starts its list, and the grammar holds the list itself; the
ids the client sends back next turn encode the same tokens. Call ids are 9 letters or digits:
mistral-common refuses any other id in the history, so those are the ids the server hands out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.prompt.mistral_v3 import TOOL_CALLS, V3Message, V3Tokens, encode_v3
from server.prompt.mistral_v3_output import new_call_id
from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import Tool

if TYPE_CHECKING:
    from server.prompt.template import Conversation


def v3_messages(conversation: Conversation) -> list[V3Message]:
    """The conversation as encode_v3 takes it; the system message stays first, so `messages[i]` in
    an error is the request's own index."""
    head = [] if conversation.system is None else [V3Message("system", conversation.system)]
    return head + [V3Message(t.role, t.text, t.tool_calls, t.tool_call_id) for t in conversation.turns]


class V3Tools:
    marker = TOOL_CALLS
    call_prefix = TOOL_CALLS + " "
    marker_is_token = True
    calls_lead: str | None = " "

    def __init__(self, marks: V3Tokens) -> None:
        self._marks = marks

    def new_call_id(self) -> str:
        return new_call_id()

    def render(
        self,
        conversation: Conversation,
        tools: list[Tool] | None,
        tokenizer: Tokenizer,
        continue_final: bool = False,
        open_calls: bool = False,
    ) -> list[int]:
        ids = encode_v3(tokenizer, v3_messages(conversation), tools, continue_final=continue_final)
        return [*ids, self._marks.tool_calls] if open_calls else ids
