"""POST /v1/completions: a string, token ids, or a list of either as the prompt."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from server.schemas.common import JSON_INT, Bool, FinishReasonField, SamplingFields, Usage
from server.schemas.response_format import ResponseFormat
from server.schemas.vllm_extensions import CompletionExtensions

TokenIds = Annotated[list[Annotated[int, Field(ge=0), JSON_INT]], Field(min_length=1)]
Prompt = (
    str
    | TokenIds
    | Annotated[list[str], Field(min_length=1)]
    | Annotated[list[TokenIds], Field(min_length=1)]
)

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for legacy completions


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class CompletionRequest(SamplingFields, CompletionExtensions):
    prompt: Prompt
    max_tokens: Annotated[int, Field(ge=1), JSON_INT] | None = DEFAULT_MAX_TOKENS
    echo: Bool = False
    logprobs: Annotated[int, Field(ge=0, le=20), JSON_INT] | None = None
    best_of: Annotated[int, Field(ge=1), JSON_INT] | None = None
    response_format: ResponseFormat | None = Field(
        None, description="As in chat (an extension of vLLM's; OpenAI's completions have none)."
    )

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


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReasonField


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
