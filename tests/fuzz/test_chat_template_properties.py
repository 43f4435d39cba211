"""Properties of the chat templates over any conversation Hypothesis can write.

Any list of messages either renders to prompt ids or raises InvalidRequestError, and which one is
decided by the roles alone; a rendered prompt has one BOS, one EOS per assistant turn and nothing a
user wrote ever becomes a control token, whatever the text spells ("</s>", "[INST]", "<s>"). The
same holds for a model's own jinja template, which gives text that spells no control token exactly
the ids transformers' apply_chat_template gives it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine.tiny import write_mistral_v1_tokenizer
from server.errors import InvalidRequestError
from server.prompt.template import ChatTemplate, Turn
from server.prompt.tokenizer import Tokenizer

# Mixtral-8x7B-Instruct-v0.1's own template (tokenizer_config.json), for the path a real checkpoint takes.
MIXTRAL_JINJA = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
# The same template with another turn marker: not Mixtral's format, so the jinja renderer serves it
# (Mixtral's own is recognised and served by the built-in renderer, tested above).
OTHER_JINJA = MIXTRAL_JINJA.replace("'[INST] '", "'[USER] '")
CONTROL_LITERALS = ["<s>", "</s>", "<unk>", "[INST]", "[/INST]", "\n\n", " "]
VALID_ROLES = re.compile(r"s?(ua)*u")  # optional system, then user/assistant alternating, ending with user

PROPERTY_SETTINGS = settings(
    max_examples=300, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip

SPECIAL_LITERALS = ("<s>", "</s>", "<unk>")
texts = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(CONTROL_LITERALS)), max_size=6).map("".join)
roles = st.sampled_from(["system", "user", "assistant"])
conversations = st.lists(st.builds(Turn, role=roles, text=texts), max_size=7)
plain_texts = (
    st.lists(
        st.one_of(st.text(max_size=12), st.sampled_from(["[INST]", "[/INST]", "\n\n", " ", "<"])), max_size=6
    )
    .map("".join)
    .filter(lambda t: not any(literal in t for literal in SPECIAL_LITERALS))
)
# user, assistant, ..., user: the orders OTHER_JINJA takes (it has no system role)
plain_conversations = (
    st.integers(0, 3)
    .flatmap(lambda pairs: st.lists(plain_texts, min_size=2 * pairs + 1, max_size=2 * pairs + 1))
    .map(lambda texts: [Turn("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)])
)


def valid_order(messages: list[Turn]) -> bool:
    return VALID_ROLES.fullmatch("".join(m.role[0] for m in messages)) is not None


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("mistral-v1-tokenizer")
    write_mistral_v1_tokenizer(directory)
    return directory


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path) -> Tokenizer:
    return Tokenizer.load(tokenizer_dir)


@pytest.fixture(scope="module")
def jinja_tokenizer(tokenizer_dir: Path) -> Tokenizer:
    tok = Tokenizer.load(tokenizer_dir)
    tok._hf.chat_template = OTHER_JINJA
    tok.chat_template = OTHER_JINJA
    return tok


def render_or_reject(template: ChatTemplate, messages: list[Turn]) -> list[int] | None:
    """The ids, or None for our InvalidRequestError; anything else propagates and fails the test."""
    try:
        return template.render(messages)
    except InvalidRequestError as exc:
        assert exc.message
        return None


@PROPERTY_SETTINGS
@given(messages=conversations)
def test_any_conversation_renders_exactly_when_its_roles_are_in_inst_order(
    tokenizer: Tokenizer, messages: list[Turn]
) -> None:
    ids = render_or_reject(ChatTemplate(tokenizer), messages)
    assert (ids is not None) == valid_order(messages)


@PROPERTY_SETTINGS
@given(messages=conversations.filter(valid_order))
def test_user_text_never_becomes_a_control_token(tokenizer: Tokenizer, messages: list[Turn]) -> None:
    ids = ChatTemplate(tokenizer).render(messages)
    assistant_turns = sum(m.role == "assistant" for m in messages)
    assert ids[0] == tokenizer.bos_id and ids.count(tokenizer.bos_id) == 1
    assert ids.count(tokenizer.eos_id) == assistant_turns
    assert ids[-1] != tokenizer.eos_id
    assert 0 not in ids  # <unk>: byte fallback spells any text
    assert all(0 <= i < tokenizer.vocab_size for i in ids)


@PROPERTY_SETTINGS
@given(messages=conversations.filter(valid_order))
def test_rendering_is_the_turns_encoded_one_by_one(tokenizer: Tokenizer, messages: list[Turn]) -> None:
    """The prompt is exactly BOS, then per user turn "[INST] text [/INST]" (system text in front of
    the first), per assistant turn its text and EOS: no text is lost, merged or reordered."""
    system = messages[0].text if messages[0].role == "system" else None
    turns = messages[1:] if system is not None else messages
    expected = [tokenizer.bos_id]
    for i, turn in enumerate(turns):
        if turn.role == "user":
            text = f"{system}\n\n{turn.text}" if i == 0 and system else turn.text
            expected += tokenizer.encode_segment(f"[INST] {text} [/INST]")
        else:
            expected += tokenizer.encode_segment(turn.text) + [tokenizer.eos_id]
    assert ChatTemplate(tokenizer).render(messages) == expected


@PROPERTY_SETTINGS
@given(messages=conversations)
def test_a_model_jinja_template_renders_or_raises_invalid_request(
    jinja_tokenizer: Tokenizer, messages: list[Turn]
) -> None:
    template = ChatTemplate(jinja_tokenizer)
    assert template.source == "jinja"
    ids = render_or_reject(template, messages)
    if ids is not None:
        assert valid_order(messages)
        assert ids[0] == jinja_tokenizer.bos_id


@PROPERTY_SETTINGS
@given(messages=conversations)
def test_on_a_model_jinja_template_user_text_never_becomes_a_control_token(
    jinja_tokenizer: Tokenizer, messages: list[Turn]
) -> None:
    ids = render_or_reject(ChatTemplate(jinja_tokenizer), messages)
    if ids is not None:
        assert ids.count(jinja_tokenizer.bos_id) == 1
        assert ids.count(jinja_tokenizer.eos_id) == sum(m.role == "assistant" for m in messages)
        assert 0 not in ids


@PROPERTY_SETTINGS
@given(messages=plain_conversations)
def test_a_model_jinja_template_gives_text_without_control_tokens_its_own_ids(
    jinja_tokenizer: Tokenizer, messages: list[Turn]
) -> None:
    reference = jinja_tokenizer._hf.apply_chat_template(
        [{"role": m.role, "content": m.text} for m in messages], tokenize=True, add_generation_prompt=True,
        return_dict=False,
    )  # fmt: skip
    assert ChatTemplate(jinja_tokenizer).render(messages) == list(reference)
