"""POST /v1/completions: a string, token ids, or a list of either as the prompt."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from server.openai.schemas.common import (
    JSON_INT,
    TOKEN_ID_SCHEMA,
    Bool,
    CommonRequestFields,
    FinishReasonField,
    Rules,
    SchemaExtra,
    StopReasonField,
    Usage,
    either,
    holds,
    is_set,
)
from server.openai.schemas.response_format import ResponseFormat
from server.openai.schemas.vllm_extensions import CompletionExtensions

MAX_PROMPTS = 64  # in one request (checked by the route, so that its 400 says so plainly)
MAX_N = 16  # CommonRequestFields' bound on n, and so best_of's

TokenIds = Annotated[
    list[Annotated[int, Field(ge=0), JSON_INT, SchemaExtra(TOKEN_ID_SCHEMA)]], Field(min_length=1)
]
Prompt = (
    str
    | TokenIds
    | Annotated[list[str], Field(min_length=1), SchemaExtra({"maxItems": MAX_PROMPTS})]
    | Annotated[list[TokenIds], Field(min_length=1), SchemaExtra({"maxItems": MAX_PROMPTS})]
)


DEFAULT_MAX_TOKENS = 16  # OpenAI's default for legacy completions


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class CompletionRequest(CommonRequestFields, CompletionExtensions):
    prompt: Prompt = Field(
        description="Text, token ids, or a list of either. Token ids are written as integers: 3, not 3.0 "
        "(which JSON Schema cannot tell apart)."
    )
    max_tokens: Annotated[int, Field(ge=0), JSON_INT] | None = Field(
        DEFAULT_MAX_TOKENS,
        description=f"null means the default, {DEFAULT_MAX_TOKENS}, as with vLLM; 0 only with echo: the "
        "prompt (and its logprobs), no completion.",
    )
    echo: Bool = False
    logprobs: Annotated[int, Field(ge=0, le=20), JSON_INT] | None = None
    best_of: Annotated[int, Field(ge=1), JSON_INT, SchemaExtra({"maximum": MAX_N})] | None = Field(
        None, description="Accepted only equal to n (each choice is its own best), or null."
    )
    response_format: ResponseFormat | None = Field(
        None, description="As in chat (an extension of vLLM's; OpenAI's completions have none)."
    )

    # Refused by the route but not written here (three rules between fields at most, see
    # LenientModel): max_tokens 0 without echo (its description says so).
    SCHEMA_RULES: ClassVar[Rules] = (
        # best_of must equal n. JSON Schema cannot compare two fields; one branch per value of n
        # would be too many (see LenientModel): the schema refuses best_of other than 1 without n,
        # and best_of past n's bound (server/http/openapi.py).
        either(is_set("n", {}), holds("best_of", {"enum": [1, None]})),
        # Without BOS, an empty text is an empty prompt, which the engine refuses.
        either(
            holds("add_special_tokens", {"const": True}),
            holds(
                "prompt",
                {
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "items": {"not": {"const": ""}}},
                    ]
                },
            ),
        ),
    )

    @field_validator("max_tokens")
    @classmethod
    def _null_is_the_default(cls, value: int | None) -> int:
        """An explicit null must not mean "to the end of the context": a client that writes out
        every field, null for "unset", would otherwise get a huge completion."""
        return DEFAULT_MAX_TOKENS if value is None else value

    @field_validator("prompt", mode="before")
    @classmethod
    def _check_prompt_shape(cls, value: Any) -> Any:
        """One clear message instead of one per member of the Prompt union."""
        ok = isinstance(value, str) or (
            isinstance(value, list)
            and value
            and (
                all(_is_token_id(v) for v in value)
                or all(isinstance(v, str) for v in value)
                or all(isinstance(v, list) and v and all(_is_token_id(t) for t in v) for v in value)
            )
        )
        if not ok:
            raise ValueError(
                "prompt must be a string, a non-empty list of token ids, a list of strings, "
                "or a list of token-id lists"
            )
        return value


# Response models: the wire shapes (see the note in server/openai/schemas/chat.py). OpenAI's stream and
# whole answer share this one shape: in the stream, finish_reason and logprobs are null until set.


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReasonField
    stop_reason: StopReasonField = None
    # vLLM's output extensions: null unless asked for (prompt_logprobs, return_token_ids), as vLLM
    # sends them; a whole answer always carries them, a stream chunk only with a value.
    prompt_logprobs: list[dict[str, Any] | None] | None = None
    prompt_token_ids: list[int] | None = None
    token_ids: list[int] | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None  # in a stream: only the last event, with stream_options.include_usage
    system_fingerprint: str
