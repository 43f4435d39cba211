"""vLLM's POST /v1/chat/completions/batch: several conversations, one choice each (index i answers
conversation i), answered whole. Each conversation is prepared as on /v1/chat/completions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from server.engine import fanout
from server.errors import InvalidRequestError
from server.http.auth import CallerDep
from server.http.deps import StateDep
from server.http.openapi import GENERATION_ERRORS
from server.http.respond import respond
from server.http.routes.chat import chat_context, chat_prompt, check_request, engine_request
from server.openai.bodies.chat import collect_chat
from server.openai.schemas.chat import BatchChatCompletionRequest, ChatCompletion

router = APIRouter(tags=["chat"])


def _check_batch(body: BatchChatCompletionRequest) -> None:
    """What a batch answer has no place for: one prompt's extras per conversation."""
    asked = [
        name
        for name, on in (
            ("prompt_logprobs", body.prompt_logprobs is not None),
            ("echo", body.echo),
            ("return_token_ids", body.return_token_ids),
            ("tools", bool(body.tools)),
            ("tool_choice", body.tool_choice not in (None, "none")),
        )
        if on
    ]
    if asked:
        raise InvalidRequestError(
            f"{asked[0]} is not available on /v1/chat/completions/batch; send the conversations one by "
            "one to /v1/chat/completions for it.",
            param=asked[0],
        )


@router.post("/v1/chat/completions/batch", response_model=ChatCompletion, responses=GENERATION_ERRORS)
async def create_batch_chat_completion(
    body: BatchChatCompletionRequest, request: Request, state: StateDep, caller: CallerDep
) -> Response:
    model = check_request(body, state, sum(len(c) for c in body.messages))
    _check_batch(body)
    prompts = [chat_prompt(body, conversation, state) for conversation in body.messages]
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    choices = [
        fanout.Choice(i, engine_request(body, state, model, f"{request_id}-{i}", prompt, 0, None))
        for i, prompt in enumerate(prompts)
    ]
    ctx = chat_context(body, state, model, request_id, prompts)
    return await respond(
        request,
        state,
        caller,
        choices,
        prompt_tokens=ctx.prompt_tokens,
        timeout=body.timeout,
        stream=None,
        collect=lambda deltas: collect_chat(ctx, deltas),
    )
