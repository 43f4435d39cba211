"""The Mixtral-Instruct [INST] format, and the rules a conversation must follow to use it.

    <s>[INST] u1 [/INST] a1</s>[INST] u2 [/INST]

One BOS. Each user turn is encoded as "[INST] {text} [/INST]" and each assistant turn as its text
plus EOS, every piece on its own, exactly as Mistral's reference encoder (mistral-common, v1) does.
Mixtral v0.1 has no system role: a system message goes in front of the first user message,
separated by a blank line, which is also what mistral-common does.

Which template serves chat is detected, never assumed: the operator's `--chat-template` file, else
the tokenizer's own template. When that template renders Mixtral-Instruct's [INST] format (the
known jinja sources, or any template that renders a probe conversation to the same text), our
renderer above serves it, unless the tokenizer has Mistral's v3 control tokens (Mistral-7B-Instruct-
v0.3, Mixtral-8x22B-Instruct-v0.1: "[INST]" is then one token, and the v3 templates render the same
probe): then every chat prompt, with tools or without, is mistral-common's v3 encoding
(server/prompt/v3_tools.py); any other template is rendered as the model's jinja, with message text
kept plain text there too (server/prompt/jinja.py). With none, the model is a base model:
completions only, and chat is a 400 that says how to configure a template.
Requests can never supply a template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from server.errors import InvalidRequestError
from server.prompt.jinja import render_jinja_ids
from server.prompt.known_templates import KNOWN_MIXTRAL_INSTRUCT
from server.prompt.mistral_v3 import v3_tokens
from server.prompt.plain_tools import PlainTextTools
from server.prompt.tokenizer import Tokenizer
from server.prompt.tool_format import ToolFormat
from server.prompt.tool_turns import validate_tool_conversation
from server.prompt.tools import Tool, ToolCall
from server.prompt.v3_tools import V3Tools

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message. An assistant turn may carry `tool_calls` (its text may then be empty); a "tool"
    turn is one call's result, `text` answering the call `tool_call_id`."""

    role: Role
    text: str
    tool_calls: tuple[ToolCall, ...] = field(default=())
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    system: str | None
    turns: list[Turn]  # user, assistant, user, ..., user; with tools, tool results between


def validate_conversation(messages: list[Turn], continue_final: bool = False) -> Conversation:
    """Enforce: optional system message first, then user/assistant alternating, ending with user (or,
    to continue it, with an assistant message)."""
    if not messages:
        raise InvalidRequestError("messages must contain at least one message.", param="messages")
    if any(m.role == "tool" or m.tool_calls for m in messages):
        return Conversation(*validate_tool_conversation(messages, continue_final))
    system: str | None = None
    turns = messages
    if messages[0].role == "system":
        system, turns = messages[0].text, messages[1:]
    offset = len(messages) - len(turns)
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role == expected:
            continue
        where = f"messages[{i + offset}]"
        if turn.role == "system":
            msg = f"{where}: a system message is only allowed as the first message."
        else:
            msg = (
                f"{where} has role '{turn.role}' but '{expected}' was expected: after an optional "
                "system message, roles must alternate user/assistant/user/... ."
            )
        raise InvalidRequestError(msg, param=f"{where}.role")
    if not turns:
        raise InvalidRequestError("messages must contain a user message.", param="messages")
    last = "assistant" if continue_final else "user"
    if turns[-1].role != last:
        why = " with continue_final_message (it continues that message)" if continue_final else ""
        raise InvalidRequestError(
            f"messages[{len(messages) - 1}]: the last message must come from the {last}{why}.",
            param=f"messages[{len(messages) - 1}].role",
        )
    return Conversation(system=system, turns=list(turns))


def render_mixtral_ids(
    conversation: Conversation, tokenizer: Tokenizer, continue_final: bool = False
) -> list[int]:
    """`continue_final`: the last (assistant) turn stays open, without EOS, for the model to go on
    (mistral-common's `prefix` assistant message)."""
    ids: list[int] = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    last = len(conversation.turns) - 1
    for i, turn in enumerate(conversation.turns):
        if turn.role == "user":
            text = turn.text
            if i == 0 and conversation.system:
                text = f"{conversation.system}\n\n{text}"
            ids += tokenizer.encode_segment(f"[INST] {text} [/INST]")
        else:
            ids += tokenizer.encode_segment(turn.text)
            if tokenizer.eos_id is not None and not (continue_final and i == last):
                ids.append(tokenizer.eos_id)
    return ids


NO_TEMPLATE_MESSAGE = (
    "This model has no chat template (a base model), so it serves /v1/completions only. To chat "
    "with it, start the server with --chat-template FILE (a Jinja chat template) or serve a "
    "checkpoint whose tokenizer_config.json has a chat_template."
)

# Sentinels that no template adds by itself; whitespace is ignored when comparing the rendered text.
_PROBE = [("user", "qxu1"), ("assistant", "qxa1"), ("user", "qxu2")]


def _squash(text: str) -> str:
    return "".join(text.split())


def renders_mixtral_instruct(source: str, tokenizer: Tokenizer) -> bool:
    """True when `source` is Mixtral-Instruct's template: a published copy, or one that renders a
    probe conversation to `<s>[INST] u [/INST] a</s>[INST] u [/INST]` (spaces aside) and puts a
    system message where mistral-common does (or refuses it, as v0.1 does)."""
    if source.strip() in KNOWN_MIXTRAL_INSTRUCT:
        return True
    from jinja2 import TemplateError

    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    try:
        text = tokenizer.jinja_text([{"role": r, "content": c} for r, c in _PROBE], source)
    except TemplateError:
        return False
    if _squash(text) != f"{bos}[INST]qxu1[/INST]qxa1{eos}[INST]qxu2[/INST]":
        return False
    system = [{"role": "system", "content": "qxs"}, {"role": "user", "content": "qxu1"}]
    try:
        with_system = tokenizer.jinja_text(system, source)
    except TemplateError:
        return True  # v0.1's own template has no system role
    return "qxs\n\nqxu1" in with_system and _squash(with_system) == f"{bos}[INST]qxsqxu1[/INST]"


class ChatTemplate:
    """Renders a validated conversation to prompt token ids.

    `source`: which renderer serves chat: "mixtral-inst" (ours, [INST] as text), "mistral-v3" (ours,
    the v3 control tokens), "jinja" (the template's own) or "none" (a base model). `origin`: where
    the template came from: "file", "model" or None."""

    def __init__(self, tokenizer: Tokenizer, override: str | None = None) -> None:
        self._tokenizer = tokenizer
        self._jinja = override if override is not None else tokenizer.chat_template
        self.origin: Literal["file", "model"] | None = (
            "file" if override is not None else "model" if self._jinja else None
        )
        self.source: Literal["mixtral-inst", "mistral-v3", "jinja", "none"]
        self.tool_format: ToolFormat | None = None
        marks = v3_tokens(tokenizer)
        if not self._jinja:
            self.source = "none"
        elif not renders_mixtral_instruct(self._jinja, tokenizer):
            self.source = "jinja"
            tokenizer.encode_markup("", [])  # builds its tokenizer copy now, not in the first request
        elif marks is not None:
            self.source, self.tool_format = "mistral-v3", V3Tools(marks)
        else:  # no tool control tokens: the plain-text layout
            self.source, self.tool_format = "mixtral-inst", PlainTextTools()

    @classmethod
    def load(cls, tokenizer: Tokenizer, path: Path | None) -> ChatTemplate:
        """The operator's `--chat-template` file if given, else the tokenizer's template."""
        return cls(tokenizer, path.read_text(encoding="utf-8") if path is not None else None)

    def render(
        self,
        messages: list[Turn],
        *,
        continue_final: bool = False,
        add_generation_prompt: bool = True,
        tools: list[Tool] | None = None,
        open_calls: bool = False,
    ) -> list[int]:
        """`continue_final`: the model goes on with the last (assistant) message. The [INST] format
        has no generation prompt to leave out (a user turn ends in [/INST], where the answer starts),
        so there `add_generation_prompt` false is taken only with `continue_final`; a Jinja template
        gets both as it would from transformers. `open_calls`: the answer must be tool calls
        (ToolFormat.calls_lead)."""
        if self.source == "none":
            raise InvalidRequestError(NO_TEMPLATE_MESSAGE, param="messages")
        conversation = validate_conversation(messages, continue_final)
        has_tools = bool(tools) or any(m.role == "tool" or m.tool_calls for m in messages)
        if self.tool_format is None:  # a Jinja template
            if has_tools:
                raise InvalidRequestError(
                    "This model's chat template is not Mixtral-Instruct's [INST] format, and the server "
                    "has no tool layout for it: send no tools, tool calls or tool messages.",
                    param="tools" if tools else "messages",
                )
            return self._render_jinja(messages, continue_final, add_generation_prompt)
        if not has_tools and not add_generation_prompt and not continue_final:
            raise InvalidRequestError(
                "add_generation_prompt false has no meaning for the Mixtral [INST] format: the user's "
                "turn ends in [/INST], where the answer starts. To have the model continue an "
                "assistant message, send it last with continue_final_message true.",
                param="add_generation_prompt",
            )
        if has_tools or self.source == "mistral-v3":
            return self.tool_format.render(conversation, tools, self._tokenizer, continue_final, open_calls)
        return render_mixtral_ids(conversation, self._tokenizer, continue_final)

    def _render_jinja(
        self, messages: list[Turn], continue_final: bool, add_generation_prompt: bool
    ) -> list[int]:
        from jinja2 import TemplateError

        try:
            return render_jinja_ids(
                self._tokenizer,
                self._jinja or "",
                [{"role": m.role, "content": m.text} for m in messages],
                continue_final=continue_final,
                add_generation_prompt=add_generation_prompt and not continue_final,
            )
        except TemplateError as exc:  # the model's template refused the conversation
            raise InvalidRequestError(f"The model's chat template rejected the messages: {exc}") from exc
        except ValueError as exc:  # transformers: continue_final_message found no final message text
            raise InvalidRequestError(f"The model's chat template rejected the messages: {exc}") from exc
