"""POST /v1/chat/completions. Its steps per conversation (checks, prompt, engine requests, context)
also serve vLLM's batch route (server/http/routes/chat_batch.py)."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request, Response

from server.admission import input_limits
from server.engine import fanout
from server.engine.base import GenerateRequest
from server.http.auth import CallerDep
from server.http.deps import ServerState, StateDep
from server.http.openapi import STREAMING_RESPONSES
from server.http.respond import respond
from server.observability.metrics import RequestTimer
from server.openai import extensions
from server.openai.bodies.chat import ChatContext, collect_chat, stream_chat
from server.openai.bodies.extras import Extras
from server.openai.bodies.tool_calls import collect_tool_chat, stream_tool_chat
from server.openai.bodies.tool_output import ToolOutput
from server.openai.outputs import chat_echo, chat_extras, check_chat
from server.openai.sampling import sampling_options
from server.openai.schemas.chat import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    ChatRequestFields,
)
from server.openai.tools import ToolPlan, constrain, opens_calls, request_plan, turns_of

router = APIRouter(tags=["chat"])


def chat_prompt(
    body: ChatRequestFields, messages: list[ChatMessage], state: ServerState, plan: ToolPlan | None = None
) -> list[int]:
    """One conversation's prompt ids, as the engine gets them."""
    prompt = state.template.render(
        turns_of(messages),
        continue_final=body.continue_final_message,
        add_generation_prompt=body.add_generation_prompt is not False,
        tools=plan.offered if plan else None,
        open_calls=opens_calls(plan),
    )
    prompt = extensions.with_bos(prompt, body.add_special_tokens, state.tokenizer.bos_id)
    prompt = extensions.truncate_prompt(
        prompt, body.truncate_prompt_tokens, body.truncation_side, state.max_model_len
    )
    input_limits.check_prompt(len(prompt), state.settings, "messages")
    return prompt


def engine_request(
    body: ChatRequestFields,
    state: ServerState,
    model: str,
    request_id: str,
    prompt: list[int],
    sample: int,
    prompt_logprobs: int | None,
    plan: ToolPlan | None = None,
) -> GenerateRequest:
    """The engine request of one choice: sample `sample` of its conversation's `prompt`."""
    max_tokens = input_limits.max_tokens(
        len(prompt), body.requested_max_tokens(), state.settings, state.max_model_len, prompt_param="messages"
    )
    return GenerateRequest(
        request_id=request_id,
        prompt_token_ids=prompt,
        sampling=constrain(
            plan,
            state.template.tool_format,
            sampling_options(
                body,
                max_tokens=max_tokens,
                logprobs=_top_logprobs(body),
                vocab_size=state.engine.model_card.vocab_size,
                max_logprobs=state.settings.max_logprobs,
                choice_index=sample,
                response_format=body.response_format,
                prompt_logprobs=prompt_logprobs,
            ),
        ),
        adapter=state.adapter_for(model),
        priority=body.priority,
        cache_salt=body.cache_salt,
    )


def _top_logprobs(body: ChatRequestFields) -> int | None:
    return (body.top_logprobs or 0) if body.logprobs else None


def chat_context(
    body: ChatRequestFields,
    state: ServerState,
    model: str,
    request_id: str,
    prompts: list[list[int]],
    extras: Extras | None = None,
    echo: str = "",
) -> ChatContext:
    return ChatContext(
        id=extensions.response_id(request_id, "chatcmpl", body.request_id),
        created=int(time.time()),
        model=model,
        prompt_tokens=sum(len(p) for p in prompts),
        n=body.n * len(prompts),
        conversations=len(prompts),
        top_logprobs=_top_logprobs(body),
        timer=RequestTimer(state.metrics),
        system_fingerprint=state.system_fingerprint,
        tokens_by_id=bool(body.return_tokens_as_token_ids),
        extras=extras,
        echo=echo,
    )


def check_request(body: ChatRequestFields, state: ServerState, messages: int) -> str:
    """The checks that need no prompt; returns the served model's name."""
    model = state.check_model(body.model)
    input_limits.check_n(body.n, state.settings)
    input_limits.check_messages(messages, state.settings)
    check_chat(body)
    extensions.check_priority(body.priority, state.settings)
    return model


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=STREAMING_RESPONSES)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, state: StateDep, caller: CallerDep
) -> Response:
    model = check_request(body, state, len(body.messages))
    plan = request_plan(body)
    prompt = chat_prompt(body, body.messages, state, plan)
    extras = chat_extras(body, prompt)
    request_id = f"chatcmpl-{uuid.uuid4().hex}"  # engine requests' ids: unique whatever the client sends
    # One set of prompt logprobs answers all choices (they share the prompt).
    plp = extras.prompt_logprobs if extras else None
    choices = [
        fanout.Choice(
            i,
            engine_request(body, state, model, f"{request_id}-{i}", prompt, i, plp if i == 0 else None, plan),
        )
        for i in range(body.n)
    ]
    ctx = chat_context(body, state, model, request_id, [prompt], extras, chat_echo(body))
    tools = tool_output(plan, state)  # None: the answer cannot hold calls
    return await respond(
        request,
        state,
        caller,
        choices,
        prompt_tokens=len(prompt),
        timeout=body.timeout,
        stream=(
            lambda d: (
                stream_tool_chat(ctx, tools, d, body.include_usage)
                if tools is not None
                else stream_chat(ctx, d, body.include_usage)
            )
        )
        if body.stream
        else None,
        collect=lambda d: collect_tool_chat(ctx, tools, d) if tools is not None else collect_chat(ctx, d),
    )


def tool_output(plan: ToolPlan | None, state: ServerState) -> ToolOutput | None:
    """How to read the answer: None when it cannot hold calls."""
    if plan is None or plan.mode == "none" or state.template.tool_format is None:
        return None
    tool_format = state.template.tool_format
    marker = tool_format.marker if plan.mode == "auto" else None
    return ToolOutput(marker, plan.offered, tool_format.new_call_id)
