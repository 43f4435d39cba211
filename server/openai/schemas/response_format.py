"""`response_format`: plain text, any JSON object, or JSON that follows a given JSON Schema.

The engine enforces the format with a grammar while it samples (vLLM's structured outputs), so the
output parses even from a model that writes noise. Whether a schema can be compiled into a grammar
is for the engine to say (it answers 400 before a response starts); here only the shape of the
field and cheap bounds are checked, so that no request makes the engine walk a huge document.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from server.openai.schemas.common import Bool, LenientModel

# A schema is a grammar the engine compiles per request: bounded like the rest of the input.
MAX_SCHEMA_BYTES = 64 << 10
MAX_SCHEMA_DEPTH = 32  # objects and arrays inside each other; vLLM 0.32 allows 64, 0.26 has no limit


def _depth(value: Any) -> int:
    """Nesting depth without recursion: a deep document must not overflow the stack."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def check_schema_bounds(value: dict[str, Any]) -> dict[str, Any]:
    """ValueError for a schema too deep or too large to hand the grammar compiler."""
    if _depth(value) > MAX_SCHEMA_DEPTH:
        raise ValueError(f"the schema nests objects and arrays more than {MAX_SCHEMA_DEPTH} levels deep")
    size = len(json.dumps(value, separators=(",", ":")))
    if size > MAX_SCHEMA_BYTES:
        raise ValueError(f"the schema is {size} bytes as JSON; at most {MAX_SCHEMA_BYTES} are accepted")
    return value


class ResponseFormatText(LenientModel):
    type: Literal["text"]


class ResponseFormatJsonObject(LenientModel):
    """Any JSON object. As with OpenAI, also ask for JSON in the prompt: the grammar guarantees the
    syntax, not a useful content, and a model not told may write a long object of noise."""

    type: Literal["json_object"]


class JsonSchemaSpec(LenientModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    json_schema: dict[str, Any] = Field(
        default_factory=dict,
        alias="schema",
        description="A JSON Schema (draft 2020-12 subset the engine's grammar compiler supports). "
        "Default: {} (any JSON value).",
    )
    strict: Bool | None = Field(
        None, description="Accepted for compatibility; the schema is always enforced."
    )

    @field_validator("json_schema")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_schema_bounds(value)


class ResponseFormatJsonSchema(LenientModel):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema, Field(discriminator="type")
]
