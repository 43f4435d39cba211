"""How a prompt format carries tools, chosen by the tokenizer: a checkpoint whose tokenizer has
Mistral's tool control tokens gets them as tokens (server/prompt/v3_tools.py), one without
(Mixtral-8x7B-Instruct-v0.1) the same layout as plain text (server/prompt/plain_tools.py). Either
way the model writes its calls as `marker` + a JSON list, which server/prompt/tool_parse.py reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from server.prompt.tokenizer import Tokenizer
from server.prompt.tools import Tool

if TYPE_CHECKING:
    from server.prompt.template import Conversation


class ToolFormat(Protocol):
    @property
    def marker(self) -> str:
        """What starts the calls in the model's output text."""
        ...

    @property
    def call_prefix(self) -> str:
        """What a grammar has the model write to start its calls (the marker and what follows it in
        the format's own history)."""
        ...

    @property
    def marker_is_token(self) -> bool:
        """The marker is a control token: it is in the output text only when the engine decodes
        special tokens."""
        ...

    @property
    def calls_lead(self) -> str | None:
        """With the calls forced (tool_choice "required" or named): None when the answer is the bare
        JSON list; else the prompt ends with the marker (`render(open_calls=True)`) and the answer
        is this text, optionally, then the list."""
        ...

    def new_call_id(self) -> str:
        """An id for a call the model made, in the shape the format accepts back in the history."""
        ...

    def render(
        self,
        conversation: Conversation,
        tools: list[Tool] | None,
        tokenizer: Tokenizer,
        continue_final: bool = False,
        open_calls: bool = False,
    ) -> list[int]:
        """The prompt's ids; `tools` None or empty: no tools offered (the history may still hold
        calls and results). `open_calls`: the answer must be calls (see `calls_lead`)."""
        ...
