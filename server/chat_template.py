"""The Mixtral-Instruct [INST] format, and the rules a conversation must follow to use it.

    <s>[INST] u1 [/INST] a1</s>[INST] u2 [/INST]

One BOS. Each user turn is encoded as "[INST] {text} [/INST]" and each assistant turn as its text
plus EOS, every piece on its own, exactly as Mistral's reference encoder (mistral-common, v1) does.
Mixtral v0.1 has no system role: a system message goes in front of the first user message,
separated by a blank line, which is also what mistral-common does.

When the model's tokenizer ships its own chat template, that one is used instead (the operator's
choice of checkpoint); requests can never supply a template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from server.errors import InvalidRequestError
from server.tokenizer import Tokenizer

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class Conversation:
    system: str | None
    turns: list[Turn]  # user, assistant, user, ..., user


def validate_conversation(messages: list[Turn]) -> Conversation:
    """Enforce: optional system message first, then user/assistant alternating, ending with user."""
    if not messages:
        raise InvalidRequestError("messages must contain at least one message.", param="messages")
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
    if turns[-1].role != "user":
        raise InvalidRequestError(
            f"messages[{len(messages) - 1}]: the last message must come from the user.",
            param=f"messages[{len(messages) - 1}].role",
        )
    return Conversation(system=system, turns=list(turns))


def render_mixtral_ids(conversation: Conversation, tokenizer: Tokenizer) -> list[int]:
    ids: list[int] = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    for i, turn in enumerate(conversation.turns):
        if turn.role == "user":
            text = turn.text
            if i == 0 and conversation.system:
                text = f"{conversation.system}\n\n{text}"
            ids += tokenizer.encode_segment(f"[INST] {text} [/INST]")
        else:
            ids += tokenizer.encode_segment(turn.text)
            if tokenizer.eos_id is not None:
                ids.append(tokenizer.eos_id)
    return ids


class ChatTemplate:
    """Renders a validated conversation to prompt token ids."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self.source: Literal["model", "mixtral-inst"] = "model" if tokenizer.chat_template else "mixtral-inst"

    def render(self, messages: list[Turn]) -> list[int]:
        conversation = validate_conversation(messages)
        if self.source == "mixtral-inst":
            return render_mixtral_ids(conversation, self._tokenizer)
        return self._render_jinja(messages)

    def _render_jinja(self, messages: list[Turn]) -> list[int]:
        from jinja2 import TemplateError

        try:
            return self._tokenizer.apply_jinja_template(
                [{"role": m.role, "content": m.text} for m in messages]
            )
        except TemplateError as exc:  # the model's template refused the conversation
            raise InvalidRequestError(f"The model's chat template rejected the messages: {exc}") from exc
