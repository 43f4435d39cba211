"""Request body -> our validation -> SamplingOptions -> vLLM SamplingParams, over generated bodies.

Property: a body our schemas accept either maps all the way to SamplingParams, or is refused by
one of our APIErrors (a 4xx with a message) before it reaches vLLM; vLLM's own validation never
has the last word, and nothing else (TypeError, OverflowError, vLLM's errors) escapes.

Imports vllm (no engine is started).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from vllm.sampling_params import SamplingParams

from server.engine.vllm import to_sampling_params
from server.errors import APIError
from server.openai.sampling import resolve_max_tokens, sampling_options
from server.openai.schemas.chat import ChatCompletionRequest
from server.openai.schemas.common import CommonRequestFields
from server.openai.schemas.completions import CompletionRequest

VOCAB_SIZE = 32000
MAX_LOGPROBS = 20
MAX_MODEL_LEN = 1024

PROPERTY_SETTINGS = settings(max_examples=1500, derandomize=True, database=None, deadline=None)


def unit(low: float, high: float, **kwargs: Any) -> st.SearchStrategy[float]:
    """Floats in range, with the edges and the smallest steps away from them drawn often."""
    return st.floats(low, high, allow_nan=False, **kwargs) | st.sampled_from([low, high, 5e-324, 1e-300])


stops = st.text(max_size=8) | st.lists(st.text(max_size=8), max_size=18)
token_ids = st.integers(0, VOCAB_SIZE + 2).map(str)
sampling_fields: dict[str, st.SearchStrategy[Any]] = {
    "n": st.integers(0, 17),
    "temperature": unit(0.0, 2.0),
    "top_p": unit(0.0, 1.0),
    "top_k": st.integers(-2, 2**40) | st.sampled_from([-1, 0, 1, VOCAB_SIZE, VOCAB_SIZE + 1]),
    "min_p": unit(0.0, 1.0),
    "seed": st.integers(-1, 2**64) | st.sampled_from([0, 2**63 - 17, 2**63 - 16, 2**32]),
    "stop": stops | st.none(),
    "presence_penalty": unit(-2.0, 2.0),
    "frequency_penalty": unit(-2.0, 2.0),
    "repetition_penalty": unit(0.0, 2.0),
    "logit_bias": st.dictionaries(token_ids, unit(-100.0, 100.0), max_size=4) | st.none(),
    "min_tokens": st.integers(0, 2 * MAX_MODEL_LEN),
    "ignore_eos": st.booleans(),
    "max_tokens": st.integers(0, 2 * MAX_MODEL_LEN) | st.none(),
}
chat_bodies = st.fixed_dictionaries(
    {"messages": st.just([{"role": "user", "content": "hi"}])},
    optional={
        **sampling_fields,
        "max_completion_tokens": st.integers(0, 2 * MAX_MODEL_LEN) | st.none(),
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(-1, 21) | st.none(),
    },
)
completion_bodies = st.fixed_dictionaries(
    {"prompt": st.just("hi")},
    optional={**sampling_fields, "logprobs": st.integers(-1, 21) | st.none()},
)
prompt_lengths = st.integers(1, MAX_MODEL_LEN + 1)


def map_all_choices(
    req: CommonRequestFields, prompt_tokens: int, requested: int | None, logprobs: int | None
) -> None:
    """What the routes do per choice, then what the engine does with each choice's options."""
    try:
        max_tokens = resolve_max_tokens(prompt_tokens, requested, MAX_MODEL_LEN)
        options = [
            sampling_options(
                req,
                max_tokens=max_tokens,
                logprobs=logprobs,
                vocab_size=VOCAB_SIZE,
                max_logprobs=MAX_LOGPROBS,
                choice_index=i,
            )
            for i in range(req.n)
        ]
    except APIError as exc:
        assert exc.message
        return
    for option in options:
        assert isinstance(to_sampling_params(option), SamplingParams)


@PROPERTY_SETTINGS
@given(body=chat_bodies, prompt_tokens=prompt_lengths)
def test_every_accepted_chat_body_maps_to_sampling_params_or_is_refused_by_us(
    body: dict[str, Any], prompt_tokens: int
) -> None:
    try:
        req = ChatCompletionRequest.model_validate(body)
    except ValidationError:
        return  # a 400 from the schema; tests/fuzz/test_api_fuzz.py checks its shape
    logprobs = (req.top_logprobs or 0) if req.logprobs else None
    map_all_choices(req, prompt_tokens, req.requested_max_tokens(), logprobs)


@PROPERTY_SETTINGS
@given(body=completion_bodies, prompt_tokens=prompt_lengths)
def test_every_accepted_completion_body_maps_to_sampling_params_or_is_refused_by_us(
    body: dict[str, Any], prompt_tokens: int
) -> None:
    try:
        req = CompletionRequest.model_validate(body)
    except ValidationError:
        return
    map_all_choices(req, prompt_tokens, req.max_tokens, req.logprobs)
