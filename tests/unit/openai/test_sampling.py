"""Request fields -> SamplingOptions: context budget, defaults and the checks that need model numbers."""

from __future__ import annotations

from typing import Any

import pytest

from server.engine.base import SamplingOptions
from server.errors import ContextLengthExceededError, InvalidRequestError
from server.openai.sampling import resolve_max_tokens, sampling_options
from server.openai.schemas.chat import ChatCompletionRequest
from server.openai.schemas.completions import CompletionRequest

VOCAB = 32000
MAX_LOGPROBS = 20


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **fields})


def options(req: ChatCompletionRequest | CompletionRequest, **kwargs: Any) -> SamplingOptions:
    defaults: dict[str, Any] = {
        "max_tokens": 100,
        "logprobs": None,
        "vocab_size": VOCAB,
        "max_logprobs": MAX_LOGPROBS,
    }
    return sampling_options(req, **{**defaults, **kwargs})


# --- resolve_max_tokens ----------------------------------------------------------------------------


def test_default_max_tokens_fills_the_rest_of_the_context() -> None:
    assert resolve_max_tokens(prompt_tokens=100, requested=None, max_model_len=2048) == 1948


def test_requested_max_tokens_is_returned_when_it_fits() -> None:
    assert resolve_max_tokens(prompt_tokens=100, requested=50, max_model_len=2048) == 50


def test_prompt_plus_max_tokens_exactly_filling_the_context_is_allowed() -> None:
    assert resolve_max_tokens(prompt_tokens=100, requested=1948, max_model_len=2048) == 1948


def test_one_token_over_the_context_raises_with_max_context_and_requested_total() -> None:
    with pytest.raises(ContextLengthExceededError) as info:
        resolve_max_tokens(prompt_tokens=100, requested=1949, max_model_len=2048)
    err = info.value
    assert err.code == "context_length_exceeded"
    assert err.param == "max_tokens"
    assert "2048" in err.message
    assert "2049" in err.message


def test_prompt_filling_the_context_without_max_tokens_raises() -> None:
    with pytest.raises(ContextLengthExceededError) as info:
        resolve_max_tokens(prompt_tokens=2048, requested=None, max_model_len=2048)
    assert info.value.code == "context_length_exceeded"
    assert "2048" in info.value.message


def test_prompt_one_short_of_the_context_leaves_one_token() -> None:
    assert resolve_max_tokens(prompt_tokens=2047, requested=None, max_model_len=2048) == 1


def test_context_length_error_is_an_invalid_request_error() -> None:
    with pytest.raises(InvalidRequestError):
        resolve_max_tokens(prompt_tokens=5000, requested=None, max_model_len=2048)


# --- sampling_options ------------------------------------------------------------------------------


def test_defaults_are_neutral_sampling() -> None:
    opts = options(chat(), max_tokens=42)
    assert opts == SamplingOptions(
        max_tokens=42,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        seed=None,
        stop=(),
        presence_penalty=0.0,
        frequency_penalty=0.0,
        repetition_penalty=1.0,
        logit_bias=None,
        logprobs=None,
        min_tokens=0,
        ignore_eos=False,
    )


def test_explicit_values_are_passed_through() -> None:
    req = chat(
        temperature=0.0,
        top_p=0.5,
        top_k=40,
        min_p=0.1,
        presence_penalty=-1.5,
        frequency_penalty=0.5,
        repetition_penalty=1.2,
        min_tokens=3,
        ignore_eos=True,
    )
    opts = options(req, max_tokens=10, logprobs=4)
    assert (opts.temperature, opts.top_p, opts.top_k, opts.min_p) == (0.0, 0.5, 40, 0.1)
    assert (opts.presence_penalty, opts.frequency_penalty, opts.repetition_penalty) == (-1.5, 0.5, 1.2)
    assert (opts.min_tokens, opts.ignore_eos, opts.logprobs, opts.max_tokens) == (3, True, 4, 10)


@pytest.mark.parametrize(("top_k", "expected"), [(-1, 0), (0, 0), (1, 1), (50, 50)])
def test_top_k_minus_one_or_zero_means_no_top_k(top_k: int, expected: int) -> None:
    assert options(chat(top_k=top_k)).top_k == expected


def test_seed_is_offset_by_choice_index() -> None:
    req = chat(seed=1234, n=3)
    assert [options(req, choice_index=i).seed for i in range(3)] == [1234, 1235, 1236]


def test_no_seed_stays_none_for_every_choice() -> None:
    assert options(chat(n=2), choice_index=1).seed is None


def test_seed_minus_one_is_no_seed_for_every_choice_as_in_vllm() -> None:
    """vLLM reads seed -1 as random sampling; offsetting it per choice would seed choices 1..n-1."""
    assert [options(chat(seed=-1, n=3), choice_index=i).seed for i in range(3)] == [None, None, None]


def test_a_negative_seed_is_offset_by_choice_index() -> None:
    req = chat(seed=-(2**63), n=2)
    assert [options(req, choice_index=i).seed for i in range(2)] == [-(2**63), -(2**63) + 1]


def test_logit_bias_keys_become_ints() -> None:
    opts = options(chat(logit_bias={"0": -100, "31999": 5.5}))
    assert opts.logit_bias == {0: -100.0, 31999: 5.5}


def test_empty_logit_bias_becomes_none() -> None:
    assert options(chat(logit_bias={})).logit_bias is None


def test_logit_bias_token_id_at_vocab_size_is_rejected() -> None:
    with pytest.raises(InvalidRequestError) as info:
        options(chat(logit_bias={"1": 1.0, str(VOCAB): 1.0}))
    assert info.value.param == "logit_bias"
    assert str(VOCAB) in info.value.message


def test_logprobs_above_max_logprobs_is_rejected() -> None:
    with pytest.raises(InvalidRequestError) as info:
        options(chat(), logprobs=6, max_logprobs=5)
    assert info.value.param == "logprobs"
    assert "5" in info.value.message
    assert "6" in info.value.message


def test_logprobs_equal_to_max_logprobs_is_allowed() -> None:
    assert options(chat(), logprobs=5, max_logprobs=5).logprobs == 5


def test_min_tokens_above_max_tokens_is_rejected() -> None:
    with pytest.raises(InvalidRequestError) as info:
        options(chat(min_tokens=11), max_tokens=10)
    assert info.value.param == "min_tokens"


def test_min_tokens_equal_to_max_tokens_is_allowed() -> None:
    assert options(chat(min_tokens=10), max_tokens=10).min_tokens == 10


def test_stop_string_becomes_a_one_element_tuple() -> None:
    assert options(chat(stop="\n\n")).stop == ("\n\n",)


def test_stop_list_becomes_a_tuple() -> None:
    assert options(chat(stop=["a", "b"])).stop == ("a", "b")


def test_completion_request_maps_the_same_way() -> None:
    req = CompletionRequest.model_validate({"prompt": "x", "temperature": 0.3, "seed": 9, "stop": "END"})
    opts = options(req, max_tokens=16, logprobs=2, choice_index=2)
    assert (opts.temperature, opts.seed, opts.stop, opts.logprobs, opts.max_tokens) == (
        0.3,
        11,
        ("END",),
        2,
        16,
    )


@pytest.mark.parametrize("top_k", [32000, 32001, 5 * 10**29])
def test_top_k_at_or_past_the_vocabulary_restricts_nothing(top_k: int) -> None:
    """A huge top_k once reached the engine and failed there (a 500 found by the API fuzzer)."""
    assert options(chat(top_k=top_k)).top_k == 0
