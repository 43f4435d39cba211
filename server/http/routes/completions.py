"""POST /v1/completions: prompts as a string, token ids, or a list of either."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request, Response

from server.admission import input_limits
from server.engine import fanout
from server.engine.base import GenerateRequest
from server.errors import InvalidRequestError
from server.http.auth import CallerDep
from server.http.deps import ServerState, StateDep
from server.http.openapi import STREAMING_RESPONSES
from server.http.respond import respond
from server.observability.metrics import RequestTimer
from server.openai import extensions
from server.openai.bodies.completions import CompletionContext, collect_completion, stream_completion
from server.openai.bodies.extras import Extras
from server.openai.bodies.logprobs import token_id_name
from server.openai.outputs import check_stream, prompt_logprobs
from server.openai.sampling import check_token_ids, sampling_options
from server.openai.schemas.completions import MAX_PROMPTS, Completion, CompletionRequest

router = APIRouter(tags=["completions"])


def _prompts(body: CompletionRequest, state: ServerState) -> list[tuple[list[int], str]]:
    """Each prompt as token ids (with BOS for text) plus the text that `echo` repeats."""
    raw = body.prompt
    single = isinstance(raw, str) or isinstance(raw[0], int)
    items: list[str | list[int]] = [raw] if single else list(raw)  # type: ignore[list-item,arg-type]
    if len(items) > MAX_PROMPTS:
        raise InvalidRequestError(f"At most {MAX_PROMPTS} prompts per request.", param="prompt")
    vocab = state.engine.model_card.vocab_size
    out: list[tuple[list[int], str]] = []
    for item in items:
        if isinstance(item, str):
            encode = state.tokenizer.encode if body.add_special_tokens else state.tokenizer.encode_segment
            out.append((encode(item), item))
            continue
        check_token_ids(item, vocab, "prompt")
        out.append((item, state.tokenizer.decode(item) if body.echo else ""))
    return out


def _truncated(
    ids: list[int], text: str, body: CompletionRequest, state: ServerState
) -> tuple[list[int], str]:
    """`truncate_prompt_tokens`: the ids the engine gets, and the text `echo` repeats, which is then
    that of the kept ids."""
    kept = extensions.truncate_prompt(
        ids, body.truncate_prompt_tokens, body.truncation_side, state.max_model_len
    )
    if kept is ids or not body.echo:
        return kept, text
    return kept, state.tokenizer.decode(kept)


def _check_unsupported(body: CompletionRequest) -> None:
    if body.best_of is not None and body.best_of != body.n:
        raise InvalidRequestError("best_of other than n is not supported.", param="best_of")
    if body.max_tokens == 0 and not body.echo:
        raise InvalidRequestError(
            "max_tokens 0 asks for no completion; it needs echo (to score the prompt).", param="max_tokens"
        )
    check_stream(body)


def _first_token(ids: list[int], body: CompletionRequest, state: ServerState) -> str:
    """The echoed prompt's first token as its logprob column names it (it has no logprob)."""
    if body.return_tokens_as_token_ids:
        return token_id_name(ids[0]) if ids else ""
    return state.tokenizer.decode(ids[:1])


def _extras(
    body: CompletionRequest, prompts: list[tuple[list[int], str]], state: ServerState
) -> Extras | None:
    """vLLM's output extensions of this request; None (the fast path) when none is asked for. As in
    vLLM, echo with logprobs asks for the prompt's logprobs (as many alternatives as `logprobs`)."""
    top_n = prompt_logprobs(body, body.echo, body.logprobs)
    if top_n is None and not body.return_token_ids and not body.continuous_usage:
        return None
    return Extras(
        prompt_ids=[ids for ids, _ in prompts],
        n=body.n,
        prompt_logprobs=top_n,
        return_token_ids=body.return_token_ids,
        continuous_usage=body.continuous_usage,
        echo_logprobs=body.echo and body.logprobs is not None,
        first_tokens=[_first_token(ids, body, state) for ids, _ in prompts],
    )


@router.post("/v1/completions", response_model=Completion, responses=STREAMING_RESPONSES)
async def create_completion(
    body: CompletionRequest, request: Request, state: StateDep, caller: CallerDep
) -> Response:
    timer = RequestTimer(state.metrics)
    model = state.check_model(body.model)
    _check_unsupported(body)
    input_limits.check_n(body.n, state.settings)
    extensions.check_priority(body.priority, state.settings)
    prompts = [_truncated(ids, text, body, state) for ids, text in _prompts(body, state)]
    extras = _extras(body, prompts, state)
    request_id = f"cmpl-{uuid.uuid4().hex}"  # engine requests' ids: unique whatever the client sends
    choices: list[fanout.Choice] = []
    echo: list[str] = []
    for p, (ids, text) in enumerate(prompts):
        input_limits.check_prompt(len(ids), state.settings, "prompt")
        max_tokens = input_limits.max_tokens(
            len(ids), body.max_tokens, state.settings, state.max_model_len, prompt_param="prompt"
        )
        for i in range(body.n):
            index = p * body.n + i
            sampling = sampling_options(
                body,
                max_tokens=max_tokens,
                logprobs=body.logprobs,
                vocab_size=state.engine.model_card.vocab_size,
                max_logprobs=state.settings.max_logprobs,
                choice_index=i,
                response_format=body.response_format,
                prompt_logprobs=extras.prompt_logprobs if extras else None,
            )
            job = GenerateRequest(
                f"{request_id}-{index}",
                ids,
                sampling,
                state.adapter_for(model),
                priority=body.priority,
                cache_salt=body.cache_salt,
            )
            choices.append(fanout.Choice(index, job))
            echo.append(text if body.echo else "")
    ctx = CompletionContext(
        id=extensions.response_id(request_id, "cmpl", body.request_id),
        created=int(time.time()),
        model=model,
        prompt_tokens=sum(len(ids) for ids, _ in prompts),
        echo=echo,
        logprobs=body.logprobs,
        timer=timer,
        system_fingerprint=state.system_fingerprint,
        extras=extras,
        n=body.n,
        tokens_by_id=bool(body.return_tokens_as_token_ids),
    )
    return await respond(
        request,
        state,
        caller,
        choices,
        prompt_tokens=ctx.prompt_tokens,
        timeout=body.timeout,
        stream=(lambda deltas: stream_completion(ctx, deltas, body.include_usage)) if body.stream else None,
        collect=lambda deltas: collect_completion(ctx, deltas),
    )
