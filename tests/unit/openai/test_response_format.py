"""response_format -> SamplingOptions -> vLLM structured outputs, and the bounds on a schema.

Imports vllm (no engine is started); the real engine's answers are in
tests/integration/openai/test_structured_output.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.config import Settings
from server.engine.base import SamplingOptions
from server.engine.vllm import engine_args, to_sampling_params
from server.openai.sampling import sampling_options
from server.openai.schemas.chat import ChatCompletionRequest
from server.openai.schemas.response_format import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def chat(response_format: dict[str, Any]) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "response_format": response_format}
    )


def options(response_format: dict[str, Any]) -> SamplingOptions:
    req = chat(response_format)
    return sampling_options(
        req,
        max_tokens=10,
        logprobs=None,
        vocab_size=32000,
        max_logprobs=20,
        response_format=req.response_format,
    )


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(levels - 1):
        schema = {"items": schema}
    return schema


def test_json_schema_reaches_the_engine_as_the_schema_itself() -> None:
    opts = options({"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}})
    assert opts.json_schema == SCHEMA and opts.json_object is False
    params = to_sampling_params(opts).structured_outputs
    assert params is not None and params.json == SCHEMA and params.json_object is None


def test_json_object_reaches_the_engine_as_json_object() -> None:
    opts = options({"type": "json_object"})
    assert opts.json_schema is None and opts.json_object is True
    params = to_sampling_params(opts).structured_outputs
    assert params is not None and params.json_object is True and params.json is None


def test_text_and_no_format_leave_sampling_unconstrained() -> None:
    assert to_sampling_params(options({"type": "text"})).structured_outputs is None
    assert to_sampling_params(SamplingOptions(max_tokens=5)).structured_outputs is None


def test_json_schema_without_schema_means_any_json() -> None:
    assert options({"type": "json_schema", "json_schema": {"name": "x"}}).json_schema == {}


def test_the_engine_writes_compact_json_with_xgrammar() -> None:
    config = engine_args(Settings(), "/m").structured_outputs_config
    assert config.backend == "xgrammar" and config.disable_any_whitespace is True


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "ü"])
def test_schema_name_follows_openai_rules(name: str) -> None:
    with pytest.raises(ValidationError):
        chat({"type": "json_schema", "json_schema": {"name": name, "schema": {}}})


def test_schema_nesting_is_bounded() -> None:
    chat({"type": "json_schema", "json_schema": {"name": "x", "schema": nested(MAX_SCHEMA_DEPTH)}})
    with pytest.raises(ValidationError, match=f"more than {MAX_SCHEMA_DEPTH} levels"):
        chat({"type": "json_schema", "json_schema": {"name": "x", "schema": nested(MAX_SCHEMA_DEPTH + 1)}})


def test_a_very_deep_schema_is_refused_without_recursion() -> None:
    with pytest.raises(ValidationError, match="levels"):
        chat({"type": "json_schema", "json_schema": {"name": "x", "schema": nested(100_000)}})


def test_schema_size_is_bounded() -> None:
    big = {"description": "x" * MAX_SCHEMA_BYTES}
    with pytest.raises(ValidationError, match="bytes as JSON"):
        chat({"type": "json_schema", "json_schema": {"name": "x", "schema": big}})
