"""POST /v1/responses: the request body of OpenAI's Responses API, as far as this server serves it.

OpenAI answers a parameter it does not know with a 400, and so does this route (unlike chat, where
unknown fields are ignored as OpenAI does there). Every field of OpenAI's `ResponseCreateParams`
that this server does not honour is declared and refused by name unless it carries its neutral
value (null, its default, an empty list or object), so that a client sending defaults, as SDKs
do, is served. Inside the input items and `text`, unknown keys are ignored: the items of a
response's `output` (with their `annotations`, `logprobs`, `status` ...) may be sent back as input.

Function tools, and the `function_call` / `function_call_output` items that carry their calls, are
in server/openai/schemas/response_tools.py; server/openai/responses_input.py maps them onto chat's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator

from server.openai.schemas.common import JSON_INT, Bool, Float, LenientModel
from server.openai.schemas.response_format import JsonSchemaSpec, check_schema_bounds
from server.openai.schemas.response_tools import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionChoice,
    FunctionTool,
    ToolChoiceMode,
    check_tool_choice,
)
from server.openai.schemas.tools import MAX_TOOLS

MAX_METADATA_KEYS = 16


class ContentPart(LenientModel):
    """Text in a message: `input_text` (what users, systems and developers write) or `output_text`
    (an assistant's, as a response's output carries it). Images, files and audio are refused by
    their type: the model reads text only."""

    type: Literal["input_text", "output_text"]
    text: str


class MessageItem(LenientModel):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]
    id: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


def _item_type(value: Any) -> str:
    """An item without `type` is a message (OpenAI's "easy input message")."""
    if isinstance(value, dict):
        return str(value.get("type", "message"))
    return str(getattr(value, "type", "message"))


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(
        _item_type,
        custom_error_type="invalid_item",
        custom_error_message=(
            "Input items must be messages (type message, or a role and content), function_call or "
            "function_call_output items"
        ),
    ),
]


class TextFormatText(LenientModel):
    type: Literal["text"]


class TextFormatJsonObject(LenientModel):
    type: Literal["json_object"]


class TextFormatJsonSchema(LenientModel):
    """The Responses API's flat form of chat's `response_format.json_schema`."""

    type: Literal["json_schema"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: Bool | None = Field(None, description="Accepted either way; the schema is always enforced.")

    @field_validator("json_schema")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_schema_bounds(value)

    def spec(self) -> JsonSchemaSpec:
        return JsonSchemaSpec.model_validate(
            {
                "name": self.name,
                "description": self.description,
                "schema": self.json_schema,
                "strict": self.strict,
            }
        )


TextFormat = Annotated[
    TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")
]


class TextConfig(LenientModel):
    format: TextFormat | None = None
    verbosity: None = Field(None, description="Not supported (only null): the model has no verbosity knob.")


def _neutral(*values: Any) -> Callable[[Any], bool]:
    """Equal to one of `values`, true not being 1; null, [] and {} always count."""
    return lambda value: (
        value is None
        or value == []
        or value == {}
        or any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in values)
    )


# field -> (neutral values, why another is refused).
REFUSED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "background": (_neutral(False), "Background responses are not supported; responses are made at once."),
    "conversation": (_neutral(), "Conversations are not stored; continue with previous_response_id."),
    "include": (_neutral(), "No additional output data (include) is available."),
    "max_tool_calls": (
        _neutral(),
        "A cap on tool calls is not served; parallel_tool_calls false allows one call a response.",
    ),
    "prompt": (_neutral(), "Stored prompt templates are not supported."),
    "prompt_cache_key": (_neutral(), "The prefix cache needs no key: shared prefixes are reused anyway."),
    "prompt_cache_retention": (_neutral(), "The prefix cache has no retention policy to set."),
    "prompt_cache_options": (_neutral(), "The prefix cache has no options to set."),
    "reasoning": (_neutral(), "Mixtral does not reason."),
    "safety_identifier": (_neutral(), "This server runs no safety monitoring."),
    "service_tier": (_neutral("auto", "default"), "This server has one service tier."),
    "stream_options": (_neutral(), "Stream obfuscation is not supported."),
    "top_logprobs": (_neutral(0), "Log probabilities are not returned on /v1/responses."),
    "truncation": (_neutral("disabled"), "Inputs are never truncated: a too long input is a 400."),
    "context_management": (_neutral(), "Context management (compaction) is not supported."),
    "image": (_neutral(), "The model writes text only."),
    "moderation": (_neutral(), "This server runs no moderation."),
    "access_programs": (_neutral(), "This server has no access programs."),
    "background_options": (_neutral(), "Background responses are not supported."),
}


class ResponsesRequest(LenientModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str | None = None
    input: str | Annotated[list[InputItem], Field(min_length=1)]
    instructions: str | None = Field(None, description="A system message before the input; not carried over.")
    max_output_tokens: Annotated[int, Field(ge=1), JSON_INT] | None = None
    temperature: Annotated[Float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[Float, Field(gt=0.0, le=1.0)] | None = None
    text: TextConfig | None = None
    stream: Bool | None = False
    store: Bool | None = Field(
        None, description="Keep the response (default true) for retrieval and continuation."
    )
    previous_response_id: str | None = None
    metadata: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None = None
    user: str | None = None
    parallel_tool_calls: Bool | None = Field(None, description="false: at most one call a response.")
    tool_choice: Annotated[ToolChoiceMode | FunctionChoice, BeforeValidator(check_tool_choice)] | None = (
        Field(None, description='Default "auto"; "required" and a named function are held by a grammar.')
    )
    tools: Annotated[list[FunctionTool], Field(max_length=MAX_TOOLS)] | None = Field(
        None, description="Function tools only."
    )
    background: Any = None
    conversation: Any = None
    include: Any = None
    max_tool_calls: Any = None
    prompt: Any = None
    prompt_cache_key: Any = None
    prompt_cache_retention: Any = None
    prompt_cache_options: Any = None
    reasoning: Any = None
    safety_identifier: Any = None
    service_tier: Any = None
    stream_options: Any = None
    top_logprobs: Any = None
    truncation: Any = None
    context_management: Any = None
    image: Any = None
    moderation: Any = None
    access_programs: Any = None
    background_options: Any = None

    @field_validator(*REFUSED)
    @classmethod
    def _refuse(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        neutral, why = REFUSED[name]
        if not neutral(value):
            raise ValueError(f"{why} Omit {name} or send its default.")
        return value

    @field_validator("metadata")
    @classmethod
    def _few_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata holds at most {MAX_METADATA_KEYS} keys")
        return value

    @property
    def stores(self) -> bool:
        return self.store is not False

    @property
    def streams(self) -> bool:
        return self.stream is True
