"""Legacy completion bodies: the whole answer, or `text_completion` events as deltas arrive.

Choice index = prompt index x n + sample index, as OpenAI numbers them. Plain dicts in the shapes of
Completion / CompletionChoice (server/openai/schemas/completions.py), for the reasons given in chat.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from server.engine.base import Delta
from server.engine.fanout import DeltaStream
from server.observability.metrics import RequestTimer
from server.openai.bodies.chunks import ChunkEncoder, usage
from server.openai.bodies.extras import Counts, Extras, cached_tokens
from server.openai.bodies.logprobs import CompletionLogprobsBuilder, prompt_logprobs_field

Deltas = DeltaStream


@dataclass(frozen=True, slots=True)
class CompletionContext:
    id: str
    created: int
    model: str
    prompt_tokens: int
    echo: list[str]  # per choice: text to put before the completion ("" without echo)
    logprobs: int | None
    timer: RequestTimer
    system_fingerprint: str
    extras: Extras | None = None  # vLLM's output extensions, when any is asked for
    n: int = 1  # choices per prompt
    tokens_by_id: bool = False  # vLLM's return_tokens_as_token_ids: logprob tokens as "token_id:<id>"

    @property
    def num_choices(self) -> int:
        return len(self.echo)


def _builders(ctx: CompletionContext) -> list[CompletionLogprobsBuilder] | None:
    if ctx.logprobs is None:
        return None
    return [CompletionLogprobsBuilder(ctx.logprobs, len(e), ctx.tokens_by_id) for e in ctx.echo]


def _chunk_choice(
    index: int, delta: Delta, builders: list[CompletionLogprobsBuilder] | None
) -> dict[str, Any]:
    """CompletionChoice: `logprobs` and `finish_reason` are null when they have no value, as in the
    whole answer (OpenAI's stream and whole answer share one shape); the last chunk also says what
    stopped it (vLLM's `stop_reason`)."""
    choice = {
        "index": index,
        "text": delta.text,
        "logprobs": builders[index].add(delta.logprobs or []) if builders else None,
        "finish_reason": delta.finish_reason,
    }
    if delta.finish_reason:
        choice["stop_reason"] = delta.stop_reason
    return choice


async def stream_completion(
    ctx: CompletionContext, deltas: Deltas, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """Yields each event's JSON: the echoed prompts, text chunks, then usage if asked for."""
    if ctx.extras is not None:
        async for event in _stream_extended(ctx, ctx.extras, deltas, include_usage):
            yield event
        return
    encoder = ChunkEncoder(ctx.id, "text_completion", ctx.created, ctx.model, ctx.system_fingerprint)
    builders = _builders(ctx)
    completion_tokens = 0
    reasons: list[str] = []
    cached = [0] * (ctx.num_choices // ctx.n)
    async with contextlib.aclosing(deltas):
        for i, echo in enumerate(ctx.echo):
            if echo:
                yield encoder.choice({"index": i, "text": echo, "logprobs": None, "finish_reason": None})
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
                cached_tokens(index, delta, ctx.n, cached)
            if delta.text or delta.finish_reason or delta.logprobs:
                yield encoder.choice(_chunk_choice(index, delta, builders))
    if include_usage:
        yield encoder.usage(ctx.prompt_tokens, completion_tokens, sum(cached))
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)


async def _stream_extended(
    ctx: CompletionContext, extras: Extras, deltas: Deltas, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """As vLLM streams with its extensions: a choice's first chunk carries the echoed prompt (with
    its logprob columns) and prompt_token_ids, every chunk its token_ids and, with continuous usage,
    the usage so far."""
    encoder = ChunkEncoder(ctx.id, "text_completion", ctx.created, ctx.model, ctx.system_fingerprint)
    builders = _builders(ctx)
    counts = Counts([len(ids) for ids in extras.prompt_ids], ctx.n)
    started = [False] * ctx.num_choices
    reasons: list[str] = []
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            counts.add(index, delta)
            ctx.timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
            first = not started[index]
            started[index] = True
            if not (first or delta.text or delta.finish_reason or delta.logprobs):
                continue
            echoed = _echo_columns(ctx, extras, index, delta, builders) if first else None
            choice = _chunk_choice(index, delta, builders)
            if first:
                _put_first(ctx, extras, index, choice, echoed)
            fields: dict[str, Any] = {"usage": counts.usage_of(index)} if extras.continuous_usage else {}
            if extras.return_token_ids:
                choice["token_ids"] = delta.token_ids
            yield encoder.choice_with(choice, fields)
    completion_tokens = sum(counts.completion)
    if include_usage:
        yield encoder.usage(ctx.prompt_tokens, completion_tokens, sum(counts.cached))
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)


def _echo_columns(
    ctx: CompletionContext,
    extras: Extras,
    index: int,
    delta: Delta,
    builders: list[CompletionLogprobsBuilder] | None,
) -> dict[str, list[Any]] | None:
    """The echoed prompt's logprob columns, added before the choice's own (echo with logprobs)."""
    if not (builders and extras.echo_logprobs and delta.prompt_logprobs):
        return None
    return builders[index].add_prompt(extras.first_tokens[index // ctx.n], delta.prompt_logprobs)


def _put_first(
    ctx: CompletionContext, extras: Extras, index: int, choice: dict[str, Any], echoed: dict[str, Any] | None
) -> None:
    """Puts the echoed prompt, its logprob columns and its ids in front of a choice's first chunk."""
    choice["text"] = ctx.echo[index] + choice["text"]
    if echoed is not None:
        later = choice["logprobs"]
        choice["logprobs"] = {key: echoed[key] + later[key] for key in echoed}
    if extras.return_token_ids:
        choice["prompt_token_ids"] = extras.prompt_ids[index // ctx.n]


async def collect_completion(ctx: CompletionContext, deltas: Deltas) -> dict[str, Any]:
    """The whole answer as a Completion-shaped dict (None fields included, as `model_dump()`)."""
    texts: list[list[str]] = [[e] for e in ctx.echo]
    reasons: list[str | None] = [None] * ctx.num_choices
    stops: list[int | str | None] = [None] * ctx.num_choices
    builders = _builders(ctx)
    extras = ctx.extras
    token_ids: list[list[int]] = [[] for _ in ctx.echo]
    prompt_logprobs: list[list[Any]] = [[] for _ in ctx.echo]
    cached = [0] * (ctx.num_choices // ctx.n)
    completion_tokens = 0
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            texts[index].append(delta.text)
            if extras is not None:
                token_ids[index] += delta.token_ids
                if delta.prompt_logprobs:
                    prompt_logprobs[index] += delta.prompt_logprobs
                    _echo_columns(ctx, extras, index, delta, builders)
            if builders and delta.logprobs:
                builders[index].add(delta.logprobs)
            if delta.finish_reason:
                reasons[index] = delta.finish_reason
                stops[index] = delta.stop_reason
                cached_tokens(index, delta, ctx.n, cached)
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, [r for r in reasons if r])
    choices = [
        {
            "index": i,
            "text": "".join(texts[i]),
            "logprobs": builders[i].value if builders else None,
            "finish_reason": reasons[i],
            "stop_reason": stops[i],
            # Null, as vLLM sends them: the openai SDK's objects have no attribute for an absent
            # extra field, so `choice.prompt_logprobs` would raise instead of giving None.
            "prompt_logprobs": None,
            "prompt_token_ids": None,
            "token_ids": None,
        }
        for i in range(ctx.num_choices)
    ]
    if extras is not None:
        for i, choice in enumerate(choices):
            _add_fields(extras, choice, token_ids[i], prompt_logprobs[i], extras.prompt_ids[i // ctx.n])
    return {
        "id": ctx.id,
        "object": "text_completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": choices,
        "usage": usage(ctx.prompt_tokens, completion_tokens, sum(cached)),
        "system_fingerprint": ctx.system_fingerprint,
    }


def _add_fields(
    extras: Extras,
    choice: dict[str, Any],
    token_ids: list[int],
    prompt_logprobs: list[Any],
    prompt: list[int],
) -> None:
    """vLLM's fields of a whole choice, where asked for."""
    if extras.return_token_ids:
        choice["token_ids"] = token_ids
    if extras.prompt_logprobs is not None:
        choice["prompt_logprobs"] = prompt_logprobs_field(prompt_logprobs, extras.prompt_logprobs)
    if extras.return_token_ids:
        choice["prompt_token_ids"] = prompt
