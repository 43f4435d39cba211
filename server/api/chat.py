"""POST /v1/chat/completions."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request, Response

from server import generation, input_limits, request_extensions
from server.api.outputs import chat_echo, chat_extras, check_chat
from server.api.respond import respond
from server.auth import CallerDep
from server.chat_template import Turn
from server.engine.base import GenerateRequest
from server.metrics import RequestTimer
from server.render.chat import ChatContext, collect_chat, stream_chat
from server.sampling import sampling_options
from server.schemas.chat import ChatCompletion, ChatCompletionRequest
from server.schemas.common import ErrorResponse
from server.state import StateDep

router = APIRouter(tags=["chat"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429, 503, 504)
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_ERRORS)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, state: StateDep, caller: CallerDep
) -> Response:
    timer = RequestTimer(state.metrics)
    model = state.check_model(body.model)
    input_limits.check_n(body.n, state.settings)
    input_limits.check_messages(len(body.messages), state.settings)
    check_chat(body)
    prompt = state.template.render(
        [Turn(m.template_role(), m.text()) for m in body.messages],
        continue_final=body.continue_final_message,
        add_generation_prompt=body.add_generation_prompt is not False,
    )
    prompt = request_extensions.with_bos(prompt, body.add_special_tokens, state.tokenizer.bos_id)
    prompt = request_extensions.truncate_prompt(
        prompt, body.truncate_prompt_tokens, body.truncation_side, state.max_model_len
    )
    request_extensions.check_priority(body.priority, state.settings)
    input_limits.check_prompt(len(prompt), state.settings, "messages")
    max_tokens = input_limits.max_tokens(
        len(prompt), body.requested_max_tokens(), state.settings, state.max_model_len, prompt_param="messages"
    )
    top_logprobs = (body.top_logprobs or 0) if body.logprobs else None
    extras = chat_extras(body, prompt)
    request_id = f"chatcmpl-{uuid.uuid4().hex}"  # engine requests' ids: unique whatever the client sends
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
                    response_format=body.response_format,
                    # One set of prompt logprobs answers all choices (they share the prompt).
                    prompt_logprobs=extras.prompt_logprobs if extras and i == 0 else None,
                ),
                adapter=state.adapter_for(model),
                priority=body.priority,
                cache_salt=body.cache_salt,
            ),
        )
        for i in range(body.n)
    ]
    ctx = ChatContext(
        id=request_extensions.response_id(request_id, "chatcmpl", body.request_id),
        created=int(time.time()),
        model=model,
        prompt_tokens=len(prompt),
        n=body.n,
        top_logprobs=top_logprobs,
        timer=timer,
        system_fingerprint=state.system_fingerprint,
        extras=extras,
        echo=chat_echo(body),
        tokens_by_id=bool(body.return_tokens_as_token_ids),
    )
    return await respond(
        request,
        state,
        caller,
        choices,
        prompt_tokens=len(prompt),
        timeout=body.timeout,
        stream=(lambda deltas: stream_chat(ctx, deltas, body.include_usage)) if body.stream else None,
        collect=lambda deltas: collect_chat(ctx, deltas),
    )
