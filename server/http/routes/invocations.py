"""POST /invocations: SageMaker's one inference route, which `vllm serve` also offers.

The body says which API it is written for, as vLLM decides: `messages` is a chat completion,
`prompt` a completion. It is then handled exactly as on its own route (validation, limits,
streaming), so a client sees the same answer on either path."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from server.errors import InvalidRequestError
from server.http.auth import CallerDep
from server.http.deps import StateDep
from server.http.openapi import STREAMING_RESPONSES
from server.http.routes.chat import create_chat_completion
from server.http.routes.completions import create_completion
from server.openai.schemas.chat import ChatCompletionRequest
from server.openai.schemas.completions import CompletionRequest

router = APIRouter(tags=["sagemaker"])
Body = TypeVar("Body", bound=BaseModel)


def _parse(schema: type[Body], body: dict[str, Any]) -> Body:
    """Errors as on the request's own route: the same 400 naming the field."""
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors, body=body) from exc


@router.post("/invocations", responses=STREAMING_RESPONSES)
async def invocations(request: Request, state: StateDep, caller: CallerDep) -> Response:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from exc
    if isinstance(body, dict) and "messages" in body:
        return await create_chat_completion(_parse(ChatCompletionRequest, body), request, state, caller)
    if isinstance(body, dict) and "prompt" in body:
        return await create_completion(_parse(CompletionRequest, body), request, state, caller)
    raise InvalidRequestError(
        "/invocations takes a chat completion (with `messages`) or a completion (with `prompt`)."
    )
