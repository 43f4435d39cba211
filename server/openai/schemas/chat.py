"""POST /v1/chat/completions: request and response bodies, streaming chunks included."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from server.openai.schemas.common import (
    JSON_INT,
    Bool,
    CommonRequestFields,
    FinishReasonField,
    LenientModel,
    Rules,
    StopReasonField,
    Usage,
    either,
    holds,
    is_set,
    unset,
)
from server.openai.schemas.response_format import ResponseFormat
from server.openai.schemas.tools import ToolCallIn
from server.openai.schemas.vllm_extensions import ChatExtensions


class TextPart(LenientModel):
    type: Literal["text"]
    text: str


class ChatMessage(LenientModel):
    """`content` may be null only in an assistant message with `tool_calls`; a "tool" message answers
    the call `tool_call_id` (checked by server/openai/tools.py, which names the field)."""

    # "developer" is OpenAI's newer name for "system" (its o1 models and later); both mean the same here.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    def template_role(self) -> Literal["system", "user", "assistant", "tool"]:
        return "system" if self.role == "developer" else self.role

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


Conversation = Annotated[list[ChatMessage], Field(min_length=1)]


class ChatRequestFields(CommonRequestFields, ChatExtensions):
    """Everything of a chat request but its messages: shared by one conversation and a batch."""

    max_tokens: Annotated[int, Field(ge=1), JSON_INT] | None = Field(
        None,
        description="Ignored when max_completion_tokens is set; else bounded as max_completion_tokens is.",
    )
    max_completion_tokens: Annotated[int, Field(ge=1), JSON_INT] | None = Field(
        None,
        description="At most the server's --max-tokens-limit, and what the context leaves after the prompt.",
    )
    logprobs: Bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=20), JSON_INT] | None = None
    response_format: ResponseFormat | None = None
    # vLLM's prompt extensions.
    echo: Bool = Field(False, description="vLLM's: the answer starts with the last message's text.")
    add_generation_prompt: Bool | None = Field(
        None, description="vLLM's: false only with continue_final_message for the [INST] format."
    )
    continue_final_message: Bool = Field(
        False, description="vLLM's: the model continues the final (assistant) message, no new turn."
    )

    SCHEMA_RULES: ClassVar[Rules] = (
        # top_logprobs only with logprobs true (the validator below).
        either(unset("top_logprobs"), is_set("logprobs", {"const": True})),
        # Not both continue_final_message and add_generation_prompt (server/openai/outputs.check_chat).
        either(
            holds("continue_final_message", {"const": False}),
            holds("add_generation_prompt", {"enum": [False, None]}),
        ),
    )

    @model_validator(mode="after")
    def _check_logprobs(self) -> ChatRequestFields:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs to be true")
        return self

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class ChatCompletionRequest(ChatRequestFields):
    messages: Conversation


class BatchChatCompletionRequest(ChatRequestFields):
    """vLLM's /v1/chat/completions/batch: several conversations, one choice each (index i answers
    conversation i), in one whole answer."""

    messages: Annotated[list[Conversation], Field(min_length=1, max_length=64)]

    SCHEMA_RULES: ClassVar[Rules] = (holds("n", {"const": 1}), holds("stream", {"const": False}))

    @field_validator("stream")
    @classmethod
    def _answered_whole(cls, value: bool) -> bool:
        if value:
            raise ValueError("a batch of conversations is answered whole: stream must be false")
        return value

    @field_validator("n")
    @classmethod
    def _once_each(cls, value: int) -> int:
        if value != 1:
            raise ValueError("a batch answers each conversation once: n must be 1")
        return value


# The response models below document the wire shapes (OpenAI's published spec) for the OpenAPI page
# and are the reference the hand-built bodies are tested against (tests/unit/openai/test_bodies.py).
# A field without a default is always sent, as null where the spec allows; a field with a default is
# optional: the stream sends it only when it has a value (`model_dump_json(exclude_unset=True)`).


class TopLogprobEntry(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class LogprobEntry(TopLogprobEntry):
    top_logprobs: list[TopLogprobEntry]


class ChoiceLogprobs(BaseModel):
    content: list[LogprobEntry] | None
    refusal: list[LogprobEntry] | None = Field(description="Always null: this server never refuses.")


class FunctionCallOut(BaseModel):
    name: str
    arguments: str = Field(description="The arguments as JSON text (an object).")


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None = Field(description="Null when the answer is tool calls only.")
    refusal: str | None = Field(description="Always null: this server never refuses.")
    # Sent only when the answer holds calls, as OpenAI does.
    tool_calls: list[ToolCallOut] | None = Field(None, exclude_if=lambda calls: calls is None)


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None
    finish_reason: FinishReasonField
    stop_reason: StopReasonField
    token_ids: list[int] | None  # vLLM's (return_token_ids); null unless asked for, as vLLM sends it


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str
    # vLLM's output extensions: null unless asked for (prompt_logprobs, return_token_ids), as vLLM
    # sends them.
    prompt_logprobs: list[dict[str, Any] | None] | None
    prompt_token_ids: list[int] | None


class ChunkFunction(BaseModel):
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(BaseModel):
    """The first piece of a call has its id, type and name; the next ones more of its arguments."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChunkFunction


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: ChoiceLogprobs | None
    finish_reason: FinishReasonField
    stop_reason: StopReasonField = None  # vLLM's; on the last chunk only


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None  # only in the last event, with stream_options.include_usage
    system_fingerprint: str
