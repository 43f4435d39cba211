"""POST /tokenize and /detokenize: vLLM's shapes, so tools written for `vllm serve` work unchanged."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, Field, model_validator

from server.openai.schemas.chat import ChatMessage
from server.openai.schemas.common import JSON_INT, TOKEN_ID_SCHEMA, Bool, LenientModel, Rules, SchemaExtra
from server.openai.schemas.tools import MAX_TOOLS, ToolChoice, ToolSpec


class TokenizeRequest(LenientModel):
    """Exactly one of `prompt` (a completions prompt) or `messages` (a chat, through the template)."""

    model: str | None = None
    prompt: str | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    add_special_tokens: Bool = Field(True, description="`prompt` only: put BOS first, as completions do.")
    return_token_strs: Bool = Field(False, description="vLLM's: each token's vocabulary entry too.")
    tools: Annotated[list[ToolSpec], Field(max_length=MAX_TOOLS)] | None = Field(
        None, description="`messages` only: the tools, as a chat request offers them."
    )
    tool_choice: ToolChoice | None = Field(
        None, description='`messages` only; "none": the tools are not shown.'
    )

    SCHEMA_RULES: ClassVar[Rules] = (
        {
            "oneOf": [
                {
                    "required": ["prompt"],
                    "properties": {"prompt": {"type": "string"}, "messages": {"type": "null"}},
                },
                {
                    "required": ["messages"],
                    "properties": {"messages": {"type": "array"}, "prompt": {"type": "null"}},
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        return self


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int = Field(description="Equal to the usage.prompt_tokens the same input gets.")
    max_model_len: int
    token_strs: list[str] | None = Field(
        description="With return_token_strs: each token's vocabulary entry (vLLM's); else null, as vLLM."
    )


class DetokenizeRequest(LenientModel):
    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0), JSON_INT, SchemaExtra(TOKEN_ID_SCHEMA)]]


class DetokenizeResponse(BaseModel):
    prompt: str
