"""Fields shared by chat and completions requests, and the shapes shared by their responses."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    Strict,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

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


# A mark on an integer field whose values are token ids: the published schema bounds it by the
# vocabulary of the model served, which only the running server knows (server/http/openapi.py).
TOKEN_ID_MARK = "x-token-id"
TOKEN_ID_SCHEMA: dict[str, Any] = {TOKEN_ID_MARK: True}


Rules = tuple[dict[str, Any], ...]


def unset(field: str) -> dict[str, Any]:
    """Schema: `field` absent or null."""
    return {"properties": {field: {"type": "null"}}}


def holds(field: str, value_schema: dict[str, Any]) -> dict[str, Any]:
    """Schema: `field`, if present, matches `value_schema`."""
    return {"properties": {field: value_schema}}


def is_set(field: str, value_schema: dict[str, Any]) -> dict[str, Any]:
    """Schema: `field` present and matching `value_schema`."""
    return {"required": [field], "properties": {field: value_schema}}


def either(*branches: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": list(branches)}


class SchemaExtra:
    """Annotated metadata: keywords added to a type's JSON Schema, for what a validator or a route
    checks that pydantic cannot put in the schema itself. Validation is unchanged."""

    def __init__(self, keywords: dict[str, Any]) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        schema.update(self.keywords)
        return schema


class LenientModel(BaseModel):
    """Fields nobody defined are ignored, not refused: OpenAI clients send extras freely. A field we
    know and do not honour is another matter: it is refused by name (vllm_extensions.REFUSALS).

    `SCHEMA_RULES`: the rules between fields that the validators (or the routes) enforce, in JSON
    Schema, so that the published schema refuses what the server refuses. Each class adds its own;
    a subclass inherits them all (they go into one `allOf`). Every `anyOf` between fields doubles
    the cases a generator must spell out, and schemathesis (jsonschema_rs) gives up on a request
    schema past three such rules of two branches: a request model keeps to three, and says the
    rest in descriptions."""

    model_config = ConfigDict(extra="ignore")
    SCHEMA_RULES: ClassVar[Rules] = ()

    @classmethod
    def __get_pydantic_json_schema__(cls, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core))
        rules = [rule for klass in reversed(cls.__mro__) for rule in vars(klass).get("SCHEMA_RULES", ())]
        if rules:
            schema["allOf"] = rules
        return schema


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

    SCHEMA_RULES: ClassVar[Rules] = (
        # stream_options only with stream true (the validator below); prompt_logprobs only without
        # it (server/openai/outputs.check_stream). One rule of two branches, not two rules.
        either(
            {
                "required": ["stream"],
                "properties": {"stream": {"const": True}, "prompt_logprobs": {"type": "null"}},
            },
            {"properties": {"stream": {"const": False}, "stream_options": {"type": "null"}}},
        ),
        # What _check_stop refuses: empty sequences, more than MAX_STOP_SEQUENCES.
        holds(
            "stop",
            {
                "anyOf": [
                    {"type": "null"},
                    {"type": "string", "minLength": 1},
                    {
                        "type": "array",
                        "maxItems": MAX_STOP_SEQUENCES,
                        "items": {"type": "string", "minLength": 1},
                    },
                ]
            },
        ),
    )

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
