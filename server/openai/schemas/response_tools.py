"""Function tools on /v1/responses: the Responses API's flat shapes of chat's `tools` and
`tool_choice`, and the `function_call` / `function_call_output` items that carry calls and their
results in `input` (server/openai/responses_input.py maps them onto chat's).

Only function tools are served: the built-in tools (web search, file search, MCP, code
interpreter, ...) run on OpenAI's side, and this server has none of them, so each is a 400 naming
its place in `tools`. Fields of a function tool that change how it is called (`defer_loading`,
`allowed_callers` other than direct, `async`, `output_schema`) are refused unless neutral.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from server.openai.schemas.common import LenientModel
from server.openai.schemas.tools import FUNCTION_NAME, FunctionSpec

# Fields of OpenAI's FunctionTool this server does not honour -> why; null, false and [] pass.
_TOOL_REFUSED = {
    "defer_loading": "Deferred tool loading (tool search) is not served.",
    "async": "Asynchronous function calls are not served.",
    "output_schema": "An output schema is not served: the model is not shown it.",
}


class FunctionTool(FunctionSpec):
    """`{type: "function", name, description, parameters, strict}`; chat nests the same fields
    under `function`."""

    type: Literal["function"]

    @model_validator(mode="before")
    @classmethod
    def _function_only(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        kind = value.get("type")
        if kind != "function":
            raise ValueError(
                f"Only function tools (type 'function') are served; a tool of type {kind!r} is not "
                "(this server runs no built-in tools: web search, file search, MCP, ...)."
            )
        for name, why in _TOOL_REFUSED.items():
            if value.get(name) not in (None, False, {}):
                raise ValueError(f"{why} Omit {name} from the tool.")
        callers = value.get("allowed_callers")
        if callers not in (None, [], ["direct"]):
            raise ValueError('Only direct calls are served: omit allowed_callers or send ["direct"].')
        return value

    def chat(self) -> dict[str, Any]:
        """Chat's shape of this tool."""
        return {"type": "function", "function": self.model_dump(exclude={"type"}, exclude_none=True)}

    def echo(self) -> dict[str, Any]:
        """The tool as a Response object lists it."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }


class FunctionChoice(LenientModel):
    type: Literal["function"]
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]


ToolChoiceMode = Literal["none", "auto", "required"]


def check_tool_choice(value: Any) -> Any:
    """A clear 400 for the choices of tools this server has not (`{"type": "file_search"}`,
    `allowed_tools`, `mcp`, ...) before pydantic lists every member of the union."""
    if isinstance(value, dict) and value.get("type") != "function":
        raise ValueError(
            f'tool_choice of type {value.get("type")!r} is not served: send "none", "auto", '
            '"required" or {"type": "function", "name": ...}.'
        )
    return value


def chat_tool_choice(choice: ToolChoiceMode | FunctionChoice | None) -> Any:
    if isinstance(choice, FunctionChoice):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


class FunctionCallItem(LenientModel):
    """A call the model made earlier, as a response's output carries it (`id` fc_..., `call_id`)."""

    type: Literal["function_call"]
    call_id: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]
    arguments: str
    id: str | None = None


class OutputText(LenientModel):
    """A text part of a call's output; images and files are refused by their type."""

    type: Literal["input_text"]
    text: str


class FunctionCallOutputItem(LenientModel):
    """The result of the call `call_id`, as the client ran it."""

    type: Literal["function_call_output"]
    call_id: Annotated[str, Field(min_length=1)]
    output: str | list[OutputText]
    id: str | None = None

    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "".join(part.text for part in self.output)
