"""Request fields -> engine-neutral SamplingOptions, with the checks that need the model's numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.engine.base import SamplingOptions
from server.errors import ContextLengthExceededError, InvalidRequestError
from server.openai.schemas.common import CommonRequestFields
from server.openai.schemas.response_format import (
    ResponseFormat,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    ResponseFormatText,
)
from server.openai.schemas.vllm_extensions import VLLMExtensions

UNSEEDED = -1  # vLLM's "no seed": a client that sends it gets random sampling, not seed -1


def resolve_max_tokens(
    prompt_tokens: int, requested: int | None, max_model_len: int, *, prompt_param: str = "messages"
) -> int:
    """The completion budget; prompt + completion must fit the context, with both numbers reported.
    `prompt_param`: the request field that holds the prompt (`messages` or `prompt`)."""
    if prompt_tokens >= max_model_len:  # the prompt alone is too long, whatever max_tokens says
        raise ContextLengthExceededError(
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"prompt has {prompt_tokens} tokens, which leaves no room for a completion. "
            "Please shorten the prompt.",
            param=prompt_param,
        )
    if requested is None:
        return max_model_len - prompt_tokens
    if prompt_tokens + requested > max_model_len:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{prompt_tokens + requested} tokens ({prompt_tokens} in the prompt, {requested} for the "
            "completion). Please reduce the prompt or max_tokens.",
            param="max_tokens",
        )
    return requested


def check_token_ids(ids: Iterable[int], vocab_size: int, param: str) -> None:
    """A 400 naming `param` for a token id past the vocabulary, which the engine would fail on."""
    bad = sorted({t for t in ids if not 0 <= t < vocab_size})
    if bad:
        raise InvalidRequestError(
            f"{param} has token ids out of vocabulary (the vocabulary has {vocab_size} tokens, ids 0 "
            f"to {vocab_size - 1}): {', '.join(map(str, bad))}.",
            param=param,
        )


def _logit_bias(raw: dict[str, float] | None, vocab_size: int) -> dict[int, float] | None:
    if not raw:
        return None
    bias = {int(k): v for k, v in raw.items()}
    check_token_ids(bias, vocab_size, "logit_bias")
    return bias


def _response_format(response_format: ResponseFormat | None) -> dict[str, Any]:
    return {
        "json_schema": (
            response_format.json_schema.json_schema
            if isinstance(response_format, ResponseFormatJsonSchema)
            else None
        ),
        "json_object": isinstance(response_format, ResponseFormatJsonObject),
    }


def _structured(req: CommonRequestFields, response_format: ResponseFormat | None) -> dict[str, Any]:
    """response_format or structured_outputs (one kind per request) as SamplingOptions fields."""
    spec = req.structured_outputs if isinstance(req, VLLMExtensions) else None
    if spec is None:
        return _response_format(response_format)
    if response_format is not None and not isinstance(response_format, ResponseFormatText):
        raise InvalidRequestError(
            "Send either structured_outputs or a response_format, not both.", param="structured_outputs"
        )
    return {
        "json_schema": spec.json_spec if isinstance(spec.json_spec, dict) else None,
        "json_object": bool(spec.json_object),
        "regex": spec.regex,
        "choice": None if spec.choice is None else tuple(spec.choice),
        "grammar": spec.grammar,
        "structured_param": "structured_outputs",
    }


def _extensions(req: CommonRequestFields, vocab_size: int) -> dict[str, Any]:
    """vLLM's extension fields as SamplingOptions fields, token ids checked against the vocabulary."""
    if not isinstance(req, VLLMExtensions):
        return {}
    stop_ids = tuple(req.stop_token_ids or ())
    check_token_ids(stop_ids, vocab_size, "stop_token_ids")
    allowed = None if req.allowed_token_ids is None else tuple(req.allowed_token_ids)
    check_token_ids(allowed or (), vocab_size, "allowed_token_ids")
    return {
        "stop_token_ids": stop_ids,
        "include_stop_str_in_output": req.include_stop_str_in_output,
        "skip_special_tokens": req.skip_special_tokens,
        "spaces_between_special_tokens": req.spaces_between_special_tokens,
        "allowed_token_ids": allowed,
        "bad_words": tuple(req.bad_words),
    }


def sampling_options(
    req: CommonRequestFields,
    *,
    max_tokens: int,
    logprobs: int | None,
    vocab_size: int,
    max_logprobs: int,
    choice_index: int = 0,
    response_format: ResponseFormat | None = None,
    prompt_logprobs: int | None = None,
) -> SamplingOptions:
    """Map one choice's sampling. With n > 1 and a seed, choice i uses seed + i: reproducible yet
    different choices. A seed of -1 is none, as in vLLM (its SamplingParams reads -1 as random)."""
    if logprobs is not None and logprobs > max_logprobs:
        raise InvalidRequestError(
            f"At most {max_logprobs} log probabilities per token can be returned; {logprobs} were asked for.",
            param="logprobs",
        )
    if prompt_logprobs is not None and prompt_logprobs > max_logprobs:
        raise InvalidRequestError(
            f"At most {max_logprobs} log probabilities per token can be returned; {prompt_logprobs} "
            "were asked for.",
            param="prompt_logprobs",
        )
    if req.min_tokens > max_tokens:
        raise InvalidRequestError(
            f"min_tokens ({req.min_tokens}) must not exceed max_tokens ({max_tokens}).", param="min_tokens"
        )
    # top_k at or past the vocabulary restricts nothing: 0 (off), also keeping huge values (a 5e29
    # overflows the engine's integer tensors) away from the engine.
    top_k = req.top_k if req.top_k is not None and 0 < req.top_k < vocab_size else 0
    structured, extensions = _structured(req, response_format), _extensions(req, vocab_size)
    _check_grammar_and_allowed_ids(structured, extensions)
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        top_k=top_k,
        min_p=req.min_p or 0.0,
        seed=None if req.seed in (None, UNSEEDED) else req.seed + choice_index,
        stop=req.stop_list(),
        presence_penalty=req.presence_penalty or 0.0,
        frequency_penalty=req.frequency_penalty or 0.0,
        repetition_penalty=1.0 if req.repetition_penalty is None else req.repetition_penalty,
        logit_bias=_logit_bias(req.logit_bias, vocab_size),
        logprobs=logprobs,
        min_tokens=req.min_tokens,
        ignore_eos=req.ignore_eos,
        prompt_logprobs=prompt_logprobs,
        **structured,
        **extensions,
    )


_GRAMMARS = ("json_schema", "json_object", "regex", "choice", "grammar")


def _check_grammar_and_allowed_ids(structured: dict[str, Any], extensions: dict[str, Any]) -> None:
    """A grammar (structured output) and allowed_token_ids each restrict the next token; the engine
    fails the request (a 500 after it started) whenever the grammar needs a token the list leaves
    out, which depends on the tokenizer, not on anything a client can check. So not both."""
    if extensions.get("allowed_token_ids") is not None and any(structured.get(k) for k in _GRAMMARS):
        raise InvalidRequestError(
            "allowed_token_ids cannot be combined with structured output (response_format json_object "
            "or json_schema, or structured_outputs): the grammar may need tokens the list leaves out.",
            param="allowed_token_ids",
        )
