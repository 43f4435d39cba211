"""Fields shared by chat and completions requests, and the shapes shared by their responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

MAX_STOP_SEQUENCES = 16


def _no_bool_or_string(value: Any) -> Any:
    """JSON `true` and `"3"` are not integers; pydantic's lax mode would read them as 1 and 3.
    A whole float such as 3.0 stays accepted: JSON Schema counts it as an integer."""
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Request fields take JSON's types as the schema states them, no coercion: `"n": true`,
# `"temperature": "0.5"` or `"stream": 1` are rejected, not read as 1, 0.5 and true.
# JSON_INT goes last in an int's Annotated, after its Field: the schema keeps minimum/maximum.
JSON_INT = BeforeValidator(_no_bool_or_string)
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]


def _token_id_key(key: str) -> str:
    """Checked per key, so that an error names every bad key, not only the first."""
    if not (key.isascii() and key.isdigit()):
        raise ValueError(f"a logit_bias key must be a token id (a non-negative integer), got {key!r}")
    return key


TokenIdKey = Annotated[str, AfterValidator(_token_id_key)]


class LenientModel(BaseModel):
    """Fields nobody defined are ignored, not refused: OpenAI clients send extras freely. A field we
    know and do not honour is another matter: it is refused by name (vllm_extensions.REFUSALS)."""

    model_config = ConfigDict(extra="ignore")


class StreamOptions(LenientModel):
    include_usage: Bool = False
    continuous_usage_stats: Bool = Field(
        False, description="vLLM's: with include_usage, every chunk also carries the usage so far."
    )


class CommonRequestFields(LenientModel):
    """What chat and completions both accept: the model, streaming, n, the timeout and the sampling
    parameters; ranges follow OpenAI's and vLLM's docs."""

    model: str | None = None
    stream: Bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=16), JSON_INT] = 1
    temperature: Annotated[Float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[Float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1), JSON_INT] | None = None
    min_p: Annotated[Float, Field(ge=0.0, le=1.0)] | None = None
    # vLLM's range: any 64-bit integer, -1 meaning none (a random seed); the top keeps room for seed +
    # choice index.
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 17), JSON_INT] | None = None
    stop: str | list[str] | None = None
    presence_penalty: Annotated[Float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[Float, Field(ge=-2.0, le=2.0)] | None = None
    # At least 0.01: the engine divides positive logits by it, and a vanishing penalty (5e-324, found
    # by the API fuzzer) under a response_format grammar made the engine fail the request.
    repetition_penalty: Annotated[Float, Field(ge=0.01, le=2.0)] | None = None
    logit_bias: dict[TokenIdKey, Annotated[Float, Field(ge=-100.0, le=100.0)]] | None = None
    min_tokens: Annotated[int, Field(ge=0), JSON_INT] = 0
    ignore_eos: Bool = False
    user: str | None = None
    # Seconds this request may take, queue included (at most the server's --request-timeout).
    timeout: Annotated[Float, Field(gt=0.0, le=86400.0)] | None = None
    # vLLM's output extensions.
    prompt_logprobs: Annotated[int, Field(ge=0, le=20), JSON_INT] | None = Field(
        None, description="vLLM's: log-probabilities of the prompt's tokens (not with stream)."
    )
    return_token_ids: Bool = Field(False, description="vLLM's: prompt_token_ids and token_ids too.")

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else (value or [])
        if len(items) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
        if any(not s for s in items):
            raise ValueError("stop sequences must not be empty")
        return value

    @field_validator("stream_options")
    @classmethod
    def _only_with_stream(cls, value: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        """As OpenAI and vLLM answer: options for a stream on a request that does not stream are a
        client's mistake, not something to ignore."""
        if value is not None and info.data.get("stream") is not True:
            raise ValueError("stream_options is only allowed when stream is true")
        return value

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def continuous_usage(self) -> bool:
        """As vLLM: only together with include_usage."""
        return self.include_usage and bool(self.stream_options and self.stream_options.continuous_usage_stats)


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(description="Prompt tokens whose KV cache was reused (prefix caching).")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None

    @classmethod
    def of(cls, prompt: int, completion: int, cached: int = 0) -> Usage:
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        )


FinishReasonField = Literal["stop", "length"] | None
# vLLM's: the stop string or stop token id that ended a "stop" finish; null for EOS or length.
StopReasonField = int | str | None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
