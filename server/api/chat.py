"""POST /v1/chat/completions."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from server import generation
from server.api.disconnect import cancel_on_disconnect
from server.chat_template import Turn
from server.engine.base import GenerateRequest
from server.metrics import RequestTimer
from server.render.chat import ChatContext, collect_chat, stream_chat
from server.sampling import resolve_max_tokens, sampling_options
from server.schemas.chat import ChatCompletion, ChatCompletionRequest
from server.schemas.common import ErrorResponse
from server.state import StateDep
from server.streaming import EventStream

router = APIRouter(tags=["chat"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 413, 429, 503)
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_ERRORS)
async def create_chat_completion(body: ChatCompletionRequest, request: Request, state: StateDep) -> Response:
    timer = RequestTimer(state.metrics)
    model = state.check_model(body.model)
    prompt = state.template.render([Turn(m.role, m.text()) for m in body.messages])
    max_tokens = resolve_max_tokens(len(prompt), body.requested_max_tokens(), state.max_model_len)
    top_logprobs = (body.top_logprobs or 0) if body.logprobs else None
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    choices = [
        generation.Choice(
            i,
            GenerateRequest(
                request_id=f"{request_id}-{i}",
                prompt_token_ids=prompt,
                sampling=sampling_options(
                    body,
                    max_tokens=max_tokens,
                    logprobs=top_logprobs,
                    vocab_size=state.engine.model_card.vocab_size,
                    max_logprobs=state.settings.max_logprobs,
                    choice_index=i,
                ),
            ),
        )
        for i in range(body.n)
    ]
    ctx = ChatContext(
        id=request_id,
        created=int(time.time()),
        model=model,
        prompt_tokens=len(prompt),
        n=body.n,
        top_logprobs=top_logprobs,
        timer=timer,
    )
    deltas = generation.start(state.engine, choices)
    if body.stream:
        return EventStream(stream_chat(ctx, deltas, body.include_usage))
    result = await cancel_on_disconnect(request, collect_chat(ctx, deltas))
    return JSONResponse(result)
