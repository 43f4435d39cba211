"""Request-body validation of /v1/chat/completions and /v1/completions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.openai.schemas.chat import ChatCompletionRequest
from server.openai.schemas.completions import DEFAULT_MAX_TOKENS, CompletionRequest

USER_HI = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": USER_HI, **fields})


def completion(**fields: Any) -> CompletionRequest:
    return CompletionRequest.model_validate({"prompt": "Once upon a time", **fields})


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


# --- chat: accepted shapes -------------------------------------------------------------------------


def test_chat_message_content_as_string_is_accepted() -> None:
    req = chat()
    assert req.messages[0].role == "user"
    assert req.messages[0].text() == "hi"


def test_chat_message_content_as_list_of_text_parts_is_joined() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "nice"}],
                },
                {"role": "user", "content": "hi"},
            ]
        }
    )
    assert req.messages[0].text() == "Be nice"
    assert req.messages[1].text() == "hi"


def test_chat_request_defaults() -> None:
    req = chat()
    assert req.n == 1
    assert req.stream is False
    assert req.logprobs is False
    assert req.top_logprobs is None
    assert req.temperature is None
    assert req.requested_max_tokens() is None
    assert req.stop_list() == ()
    assert req.include_usage is False


def test_unknown_extra_fields_are_ignored() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "hi", "weird": 1}],
            "store": True,
            "metadata": {"a": "b"},
        }
    )
    assert not hasattr(req, "store")
    assert not hasattr(req.messages[0], "weird")
    assert "store" not in req.model_dump()


def test_top_logprobs_with_logprobs_true_is_accepted() -> None:
    req = chat(logprobs=True, top_logprobs=5)
    assert req.top_logprobs == 5


# --- chat: rejected shapes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 17}, "n"),
        ({"top_k": -2}, "top_k"),
        ({"presence_penalty": 2.1}, "presence_penalty"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"repetition_penalty": 5e-324}, "repetition_penalty"),
        ({"repetition_penalty": 0.009}, "repetition_penalty"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"seed": -(2**63) - 1}, "seed"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"stop": ""}, "stop"),
        ({"stop": ["ok", ""]}, "stop"),
        ({"stop": [f"s{i}" for i in range(17)]}, "stop"),
        ({"logit_bias": {"abc": 1.0}}, "logit_bias.abc.[key]"),
        ({"logit_bias": {"-1": 1.0}}, "logit_bias.-1.[key]"),
        ({"logit_bias": {"5": 101.0}}, "logit_bias.5"),
        ({"response_format": {"type": "xml"}}, "response_format"),
    ],
)
def test_chat_out_of_range_field_is_rejected_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        chat(**fields)
    assert field in error_fields(info.value)


def test_top_logprobs_without_logprobs_is_rejected() -> None:
    with pytest.raises(ValidationError, match="top_logprobs requires logprobs to be true"):
        chat(top_logprobs=2)


def test_sixteen_stop_strings_are_accepted_but_seventeen_are_not() -> None:
    assert len(chat(stop=[f"s{i}" for i in range(16)]).stop_list()) == 16
    with pytest.raises(ValidationError, match="at most 16 stop sequences"):
        chat(stop=[f"s{i}" for i in range(17)])


def test_role_tool_is_a_message_but_an_unknown_role_is_rejected() -> None:
    """Tool messages are taken (their place in the conversation is checked when it is rendered)."""
    tool = {"role": "tool", "content": "x", "tool_call_id": "c"}
    ChatCompletionRequest.model_validate({"messages": [tool]})
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({"messages": [{"role": "function", "content": "x"}]})
    assert "messages.0.role" in error_fields(info.value)


def test_empty_messages_list_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({"messages": []})
    assert "messages" in error_fields(info.value)


def test_image_content_part_is_rejected() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
        )


# --- shared helpers ---------------------------------------------------------------------------------


def test_stop_list_wraps_a_single_string_in_a_tuple() -> None:
    assert chat(stop="###").stop_list() == ("###",)


def test_stop_list_keeps_list_order_as_tuple() -> None:
    assert chat(stop=["b", "a"]).stop_list() == ("b", "a")


@pytest.mark.parametrize(
    ("stream_options", "expected"),
    [(None, False), ({}, False), ({"include_usage": False}, False), ({"include_usage": True}, True)],
)
def test_include_usage_follows_stream_options(stream_options: dict[str, bool] | None, expected: bool) -> None:
    assert chat(stream=True, stream_options=stream_options).include_usage is expected


def test_stream_options_without_stream_is_rejected_naming_it() -> None:
    """OpenAI and vLLM answer 400 here; ignoring it would hide the client's mistake."""
    for fields in ({"stream_options": {"include_usage": True}}, {"stream": False, "stream_options": {}}):
        with pytest.raises(ValidationError, match="only allowed when stream is true") as info:
            chat(**fields)
        assert error_fields(info.value) == {"stream_options"}
    with pytest.raises(ValidationError):
        completion(stream_options={"include_usage": True})


def test_null_stream_options_without_stream_is_accepted() -> None:
    assert chat(stream=False, stream_options=None).include_usage is False
    assert completion(stream_options=None).include_usage is False


def test_developer_role_is_a_system_message() -> None:
    req = chat(messages=[{"role": "developer", "content": "Be brief."}, *USER_HI])
    assert [m.template_role() for m in req.messages] == ["system", "user"]


def test_every_bad_logit_bias_key_is_reported() -> None:
    with pytest.raises(ValidationError) as info:
        chat(logit_bias={"a": 1, "7": 1, "b": 1, "-3": 1})
    assert {f.split(".")[1] for f in error_fields(info.value)} == {"a", "b", "-3"}


def test_requested_max_tokens_prefers_max_completion_tokens() -> None:
    assert chat(max_tokens=10, max_completion_tokens=20).requested_max_tokens() == 20
    assert chat(max_tokens=10).requested_max_tokens() == 10
    assert chat(max_completion_tokens=7).requested_max_tokens() == 7


def test_logit_bias_numeric_string_keys_are_accepted() -> None:
    assert chat(logit_bias={"0": -100, "31999": 100}).logit_bias == {"0": -100.0, "31999": 100.0}


# --- completions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ["text", "", [1, 2, 3], ["a", "b"], [[1, 2], [3]]],
    ids=["str", "empty-str", "token-ids", "list-of-str", "list-of-token-ids"],
)
def test_completion_prompt_shapes_are_accepted_unchanged(prompt: Any) -> None:
    assert completion(prompt=prompt).prompt == prompt


@pytest.mark.parametrize(
    "prompt",
    [[], [1, "a"], ["a", [1]], [[1], []], [[]], [True, False], 5, None, [1.5]],
    ids=[
        "empty",
        "int-and-str",
        "str-and-list",
        "empty-inner",
        "only-empty-inner",
        "bools",
        "int",
        "none",
        "float",
    ],
)
def test_completion_prompt_bad_shapes_are_rejected_with_one_clear_message(prompt: Any) -> None:
    with pytest.raises(ValidationError) as info:
        completion(prompt=prompt)
    assert error_fields(info.value) == {"prompt"}
    assert "prompt must be a string" in str(info.value)


@pytest.mark.parametrize("prompt", [[1, -2, 3], [[1], [-1]]])
def test_completion_negative_token_ids_are_rejected(prompt: Any) -> None:
    with pytest.raises(ValidationError):
        completion(prompt=prompt)


def test_completion_missing_prompt_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        CompletionRequest.model_validate({})
    assert "prompt" in error_fields(info.value)


def test_completion_suffix_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        completion(suffix="end")
    assert "suffix" in error_fields(info.value)


def test_completion_defaults_to_openai_max_tokens() -> None:
    req = completion()
    assert req.max_tokens == DEFAULT_MAX_TOKENS == 16
    assert req.echo is False
    assert req.logprobs is None


def test_completion_null_max_tokens_is_the_default_not_the_whole_context() -> None:
    assert completion(max_tokens=None).max_tokens == DEFAULT_MAX_TOKENS


@pytest.mark.parametrize("logprobs", [-1, 21])
def test_completion_logprobs_out_of_range_is_rejected(logprobs: int) -> None:
    with pytest.raises(ValidationError) as info:
        completion(logprobs=logprobs)
    assert "logprobs" in error_fields(info.value)


def test_completion_shares_sampling_validation() -> None:
    with pytest.raises(ValidationError) as info:
        completion(temperature=2.5, n=17)
    assert error_fields(info.value) == {"temperature", "n"}


def test_completion_booleans_inside_nested_token_lists_are_rejected_like_flat_ones() -> None:
    with pytest.raises(ValidationError):
        completion(prompt=[True])
    with pytest.raises(ValidationError):
        completion(prompt=[[True, 5]])


# --- JSON types as the schema states them (found by tests/fuzz/test_api_fuzz.py) --------------------

COERCED_BY_LAX_MODE = [
    (chat, {"seed": False}, "seed"),
    (chat, {"temperature": False}, "temperature"),
    (chat, {"n": "2"}, "n"),
    (chat, {"max_tokens": True}, "max_tokens"),
    (chat, {"logprobs": 1}, "logprobs"),
    (chat, {"stream": "true"}, "stream"),
    (chat, {"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    (chat, {"top_p": "0.5"}, "top_p"),
    (chat, {"logit_bias": {"13": True}}, "logit_bias.13"),
    (completion, {"logprobs": True}, "logprobs"),
    (completion, {"echo": 0}, "echo"),
    (completion, {"best_of": True}, "best_of"),
]


@pytest.mark.parametrize(
    ("make", "fields", "field"), COERCED_BY_LAX_MODE, ids=[str(f) for _, f, _ in COERCED_BY_LAX_MODE]
)
def test_booleans_strings_and_numbers_of_the_wrong_json_type_are_rejected_not_coerced(
    make: Any, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        make(**fields)
    assert error_fields(info.value) == {field}


def test_a_whole_float_is_still_an_integer_as_json_schema_says() -> None:
    assert completion(max_tokens=3.0, n=2.0).max_tokens == 3
    with pytest.raises(ValidationError):
        completion(max_tokens=3.5)


def test_integer_fields_keep_their_bounds_in_the_published_schema() -> None:
    properties = CompletionRequest.model_json_schema()["properties"]
    assert properties["n"] == {"default": 1, "maximum": 16, "minimum": 1, "title": "N", "type": "integer"}
    assert {"minimum": 0, "maximum": 20, "type": "integer"} in properties["logprobs"]["anyOf"]
