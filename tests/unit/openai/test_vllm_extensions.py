"""The refusal table of vLLM's extension fields, and the request-level helpers, without an engine."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from server.engine.base import SamplingOptions
from server.engine.vllm import to_sampling_params
from server.errors import InvalidRequestError
from server.openai.extensions import check_priority, response_id, truncate_prompt, with_bos
from server.openai.sampling import sampling_options
from server.openai.schemas.chat import ChatCompletionRequest
from server.openai.schemas.completions import CompletionRequest
from server.openai.schemas.vllm_extensions import REFUSALS, StructuredOutputs
from tests.conftest import engine_settings

MESSAGES = [{"role": "user", "content": "hi"}]
# A value each refused field may not take; the structured_outputs sub-fields are tested below.
REFUSED: dict[str, Any] = {
    "use_beam_search": True,
    "length_penalty": 2.0,
    "watermarking": True,
    "logprob_token_ids": [5],
    "thinking_token_budget": 100,
    "repetition_detection": {"max_pattern_size": 4, "min_count": 3},
    "vllm_xargs": {"a": 1},
    "kv_transfer_params": {"do_remote_prefill": True},
    "ec_transfer_params": {"x": 1},
    "media_io_kwargs": {"image": {}},
    "mm_processor_kwargs": {"x": 1},
    "prompt_embeds": "AAAA",
    "return_prompt_text": True,
    "routed_experts_prompt_start": 3,
    "stream_interval": 2,
    "documents": [{"title": "t", "text": "x"}],
    "chat_template": "{{ x }}",
    "chat_template_kwargs": {"enable_thinking": False},
    "reasoning_effort": "low",
    "functions": [{"name": "f"}],
    "function_call": "auto",
    "suffix": "tail",
    "guided_json": {"type": "object"},
    "guided_regex": "a+",
    "guided_choice": ["a"],
    "guided_grammar": "root ::= 'a'",
    "guided_json_object": True,
    "guided_decoding_backend": "xgrammar",
    "guided_whitespace_pattern": " ",
}
STRUCTURED_ONLY = {"disable_additional_properties", "whitespace_pattern", "structural_tag"}


def model_for(field: str) -> tuple[type[BaseModel], dict[str, Any]]:
    if field in CompletionRequest.model_fields and field not in ChatCompletionRequest.model_fields:
        return CompletionRequest, {"prompt": "x"}
    return ChatCompletionRequest, {"messages": MESSAGES}


def test_every_row_of_the_table_is_a_declared_field_and_has_a_refused_example() -> None:
    declared = set(ChatCompletionRequest.model_fields) | set(CompletionRequest.model_fields)
    declared |= {f.alias or name for name, f in StructuredOutputs.model_fields.items()}
    assert set(REFUSALS) <= declared
    assert set(REFUSALS) == set(REFUSED) | STRUCTURED_ONLY


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_a_value_asking_for_what_is_not_provided_is_refused_naming_the_field(field: str) -> None:
    model, base = model_for(field)
    with pytest.raises(ValidationError) as info:
        model.model_validate({**base, field: REFUSED[field]})
    [error] = info.value.errors()
    assert error["loc"] == (field,)
    assert field in error["msg"]


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_the_default_of_every_refused_field_is_accepted(field: str) -> None:
    model, base = model_for(field)
    default = model.model_fields[field].get_default(call_default_factory=True)
    model.model_validate({**base, field: default})


@pytest.mark.parametrize(
    ("field", "value"), [("disable_additional_properties", True), ("whitespace_pattern", " *")]
)
def test_structured_output_options_not_provided_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(
            {"messages": MESSAGES, "structured_outputs": {"regex": "a", field: value}}
        )
    assert info.value.errors()[0]["loc"] == ("structured_outputs", field)


@pytest.mark.parametrize(
    "spec", [{}, {"regex": "a", "choice": ["a"]}, {"json_object": False}, {"choice": []}, {"grammar": "  "}]
)
def test_structured_outputs_takes_exactly_one_usable_constraint(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        StructuredOutputs.model_validate(spec)


def test_structured_outputs_json_may_be_a_string_and_reaches_the_engine_as_a_schema() -> None:
    req = CompletionRequest.model_validate(
        {"prompt": "x", "structured_outputs": {"json": '{"type": "integer"}'}}
    )
    options = sampling_options(req, max_tokens=4, logprobs=None, vocab_size=32000, max_logprobs=20)
    assert options.json_schema == {"type": "integer"}
    assert options.structured_param == "structured_outputs"


def test_extension_fields_reach_vllms_sampling_params() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "messages": MESSAGES,
            "stop_token_ids": [13],
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "spaces_between_special_tokens": False,
            "allowed_token_ids": [5, 6],
            "bad_words": ["cat"],
        }
    )
    options = sampling_options(req, max_tokens=4, logprobs=None, vocab_size=32000, max_logprobs=20)
    params = to_sampling_params(options)
    assert params.stop_token_ids == [13]
    assert params.include_stop_str_in_output and not params.skip_special_tokens
    assert not params.spaces_between_special_tokens
    assert params.allowed_token_ids == [5, 6] and params.bad_words == ["cat"]
    guided = ChatCompletionRequest.model_validate(
        {"messages": MESSAGES, "structured_outputs": {"choice": ["a", "b"]}}
    )
    options = sampling_options(guided, max_tokens=4, logprobs=None, vocab_size=32000, max_logprobs=20)
    params = to_sampling_params(options)
    assert params.structured_outputs is not None and params.structured_outputs.choice == ["a", "b"]


def test_allowed_token_ids_and_a_grammar_are_not_mapped_together() -> None:
    req = ChatCompletionRequest.model_validate(
        {"messages": MESSAGES, "allowed_token_ids": [5, 6], "structured_outputs": {"choice": ["a"]}}
    )
    with pytest.raises(InvalidRequestError) as refused:
        sampling_options(req, max_tokens=4, logprobs=None, vocab_size=32000, max_logprobs=20)
    assert refused.value.param == "allowed_token_ids"


def test_defaults_leave_vllms_sampling_params_as_they_were() -> None:
    params = to_sampling_params(SamplingOptions(max_tokens=4))
    assert params.skip_special_tokens and params.spaces_between_special_tokens
    assert not params.stop_token_ids and params.allowed_token_ids is None and not params.bad_words


def test_truncation_keeps_the_last_tokens_unless_told_the_first() -> None:
    ids = list(range(10))
    assert truncate_prompt(ids, 3, None, 100) == [7, 8, 9]
    assert truncate_prompt(ids, 3, "left", 100) == [7, 8, 9]
    assert truncate_prompt(ids, 3, "right", 100) == [0, 1, 2]
    assert truncate_prompt(ids, 30, None, 100) == ids
    assert truncate_prompt(ids, None, "right", 100) == ids
    assert truncate_prompt(ids, -1, None, 6) == [5, 6, 7, 8, 9]  # the context less one
    with pytest.raises(InvalidRequestError) as info:
        truncate_prompt(ids, 101, None, 100)
    assert info.value.param == "truncate_prompt_tokens"


def test_priority_needs_the_priority_policy() -> None:
    check_priority(0, engine_settings())
    check_priority(-3, engine_settings(scheduling_policy="priority"))
    with pytest.raises(InvalidRequestError) as info:
        check_priority(1, engine_settings())
    assert info.value.param == "priority"


def test_response_id_and_bos() -> None:
    assert response_id("cmpl-123", "cmpl", "abc") == "cmpl-abc"
    assert response_id("cmpl-123", "cmpl", None) == "cmpl-123"
    assert with_bos([1, 5], True, 1) == [1, 1, 5] and with_bos([1, 5], False, 1) == [1, 5]
