"""A conversation rendered by a Jinja chat template (the model's, or the operator's --chat-template)
to prompt ids in which message text is always plain text, as it is in the built-in [INST] renderer.

The template is rendered twice: with the messages, and with each message's text replaced by a
sentinel. The second shows the template's own markup; the first must then be that markup with each
message's text where its sentinel was, as written or stripped of surrounding whitespace (what
templates' `trim` and `.strip()` do). When it is, the tokenizer parses control tokens in the markup
only (server/prompt/markup.py); for text that spells none, the ids are the template's own.

When it is not (a template that rewrites message text some other way: `upper`, `replace`, a
slice...), which characters came from a message cannot be told. Then a message whose text spells a
control token is a 400, and so is a prompt with control tokens the markup alone does not have;
every other conversation gets the template's own ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from server.errors import InvalidRequestError
from server.prompt.markup import Span
from server.prompt.tokenizer import Tokenizer

Message = dict[str, str]

_SENTINEL = "\ue000message{}\ue001"
_SENTINEL_PATTERN = re.compile("\ue000message(\\d+)\ue001")
# How templates put a message's text into the prompt: as written, or trimmed.
_PLACEMENTS: tuple[Callable[[str], str], ...] = (str, str.strip, str.lstrip, str.rstrip)


def render_jinja_ids(
    tokenizer: Tokenizer,
    source: str,
    messages: list[Message],
    *,
    continue_final: bool = False,
    add_generation_prompt: bool = True,
) -> list[int]:
    """The prompt ids; jinja2.TemplateError where the template refuses the conversation.
    `continue_final` and `add_generation_prompt` as transformers' apply_chat_template takes them."""
    options = {"continue_final_message": continue_final, "add_generation_prompt": add_generation_prompt}
    text = tokenizer.jinja_text(messages, source, **options)
    contents = [m["content"] for m in messages]
    skeleton = _skeleton(tokenizer, source, messages, options)
    spans = content_spans(text, skeleton, contents) if skeleton is not None else None
    ids = tokenizer.encode_markup(text, spans) if spans is not None else None
    return ids if ids is not None else _checked(tokenizer, text, skeleton, contents)


def content_spans(rendered: str, skeleton: str, contents: Sequence[str]) -> list[Span] | None:
    """Where the messages' text lies in `rendered`, given `skeleton`, the same template rendered with
    message i's text replaced by `sentinel(i)`. None when `rendered` is not the skeleton with each
    sentinel replaced by its message's text, as written or trimmed."""
    pieces = _SENTINEL_PATTERN.split(skeleton)
    markup, owners = pieces[0::2], [int(i) for i in pieces[1::2]]
    if any(i >= len(contents) for i in owners) or not rendered.startswith(markup[0]):
        return None
    # One step per sentinel: each prompt position matched so far -> the span of text that got there.
    steps: list[dict[int, tuple[int, Span]]] = []
    reached = [len(markup[0])]
    for owner, after in zip(owners, markup[1:], strict=True):
        step: dict[int, tuple[int, Span]] = {}
        for start in reached:
            for place in _PLACEMENTS:
                stop = start + len(placed := place(contents[owner]))
                if rendered.startswith(placed, start) and rendered.startswith(after, stop):
                    step.setdefault(stop + len(after), (start, (start, stop)))
        steps.append(step)
        reached = list(step)
    end = len(rendered)
    if end not in reached:
        return None
    spans: list[Span] = []
    for step in reversed(steps):
        end, span = step[end]
        spans.append(span)
    return spans[::-1]


def sentinel(index: int) -> str:
    return _SENTINEL.format(index)


def _skeleton(
    tokenizer: Tokenizer, source: str, messages: list[Message], options: dict[str, bool] | None = None
) -> str | None:
    marked = [dict(m, content=sentinel(i)) for i, m in enumerate(messages)]
    try:
        return tokenizer.jinja_text(marked, source, **(options or {}))
    except Exception:  # a template that cannot take the sentinels: only the exact path is lost
        return None


def _checked(tokenizer: Tokenizer, text: str, skeleton: str | None, contents: list[str]) -> list[int]:
    """The template's own ids, where no message can have made a control token."""
    for i, content in enumerate(contents):
        spelled = next((t for t in tokenizer.control_tokens.values() if t and t in content), None)
        if spelled is not None:
            raise InvalidRequestError(
                f"messages[{i}].content contains {spelled!r}, a control token of this model. Its chat "
                "template rewrites message text, so the server cannot keep that text apart from the "
                "template's own control tokens; leave it out.",
                param=f"messages[{i}].content",
            )
    ids = tokenizer.encode_rendered(text)
    if skeleton is not None and _controls(tokenizer, ids) != _controls(
        tokenizer, tokenizer.encode_rendered(skeleton)
    ):
        raise InvalidRequestError(
            "This model's chat template made control tokens out of message text; rephrase the messages.",
            param="messages",
        )
    return ids


def _controls(tokenizer: Tokenizer, ids: list[int]) -> list[int]:
    return [i for i in ids if i in tokenizer.control_tokens]
