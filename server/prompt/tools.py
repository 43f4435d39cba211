"""Function tools as the prompt layer sees them: what the model is offered, what it called, and what
the tools answered. The OpenAI request shapes are mapped onto these in server/openai; each prompt
format (Mixtral v0.1's plain [INST] text, Mistral's v3 control tokens) renders and parses them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Tool:
    """One function the model may call; `parameters` is its JSON Schema (an object schema)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model made, or made earlier in the history: `arguments` is JSON text, as OpenAI
    carries it."""

    id: str
    name: str
    arguments: str
