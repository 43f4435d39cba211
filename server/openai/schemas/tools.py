"""`tools`, `tool_choice` and the tool parts of messages, in OpenAI's chat shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from server.openai.schemas.common import Bool, LenientModel
from server.openai.schemas.response_format import check_schema_bounds

FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's rule for function names
MAX_TOOLS = 128  # OpenAI's limit


class FunctionSpec(LenientModel):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description='A JSON Schema of an object. Default: {"type": "object", "properties": {}}.'
    )
    strict: Bool | None = Field(
        None, description="Accepted either way: the arguments always follow the schema."
    )

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """The arguments are a JSON object, so their schema must describe one."""
        if value is None:
            return value
        kind = value.get("type", "object")
        if kind != "object":
            raise ValueError(
                f'parameters must be a JSON Schema of an object ("type": "object"), not {kind!r}'
            )
        return check_schema_bounds(value)


class ToolSpec(LenientModel):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(LenientModel):
    name: str


class NamedToolChoice(LenientModel):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class FunctionCallIn(LenientModel):
    name: str
    arguments: str


class ToolCallIn(LenientModel):
    """A call the assistant made earlier in the conversation."""

    id: Annotated[str, Field(min_length=1)]
    type: Literal["function"] = "function"
    function: FunctionCallIn
