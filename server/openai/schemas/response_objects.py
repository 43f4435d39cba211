"""The Responses API's answers, as this server sends them: the shapes of OpenAI's published spec
(its `Response`, output message, usage, deleted response and input item list), for the OpenAPI page.
The bodies themselves are built as dicts (server/openai/bodies/responses.py); the tests hold them to
the openai SDK's models of the spec."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

ItemStatus = Literal["in_progress", "completed", "incomplete"]


class OutputText(BaseModel):
    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] = Field(description="Always empty.")
    logprobs: list[dict[str, Any]] | None = Field(None, description="Always empty: not returned here.")


class InputText(BaseModel):
    type: Literal["input_text"]
    text: str


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    status: ItemStatus
    content: list[OutputText]


class InputMessage(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["user", "system", "developer"]
    status: ItemStatus
    content: list[InputText]


class FunctionCall(BaseModel):
    id: str = Field(description="The item's id (fc_...).")
    type: Literal["function_call"]
    status: ItemStatus
    call_id: str = Field(description="What the function_call_output item of the result names.")
    name: str
    arguments: str = Field(description="The arguments, a JSON object as text.")


class FunctionCallOutput(BaseModel):
    id: str
    type: Literal["function_call_output"]
    status: ItemStatus
    call_id: str
    output: str | list[InputText]


class FunctionChoice(BaseModel):
    type: Literal["function"]
    name: str


class InputTokensDetails(BaseModel):
    cached_tokens: int = Field(description="Input tokens whose KV cache was reused (prefix caching).")
    cache_write_tokens: int = Field(description="Always 0: there is no explicit prompt cache.")


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = Field(description="Always 0: Mixtral does not reason.")


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class ResponseFailure(BaseModel):
    code: str
    message: str


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    error: ResponseFailure | None
    incomplete_details: IncompleteDetails | None
    model: str
    output: list[OutputMessage | FunctionCall]
    usage: ResponseUsage | None
    # The request's fields, as they were applied.
    instructions: str | None
    max_output_tokens: int | None
    metadata: dict[str, str]
    parallel_tool_calls: bool
    previous_response_id: str | None
    temperature: float
    top_p: float
    text: dict[str, Any]
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice
    tools: list[dict[str, Any]]
    truncation: Literal["disabled"]
    user: str | None
    background: bool
    completed_at: int | None = None


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response.deleted"]
    deleted: bool


class InputItemList(BaseModel):
    object: Literal["list"]
    data: list[InputMessage | OutputMessage | FunctionCall | FunctionCallOutput]
    first_id: str | None = Field(description="Null when the page is empty.")
    last_id: str | None = Field(description="Null when the page is empty.")
    has_more: bool
