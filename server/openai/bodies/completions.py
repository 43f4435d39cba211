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
from server.openai.bodies import common
from server.openai.bodies.chunks import usage
from server.openai.bodies.common import CacheHits, Counts
from server.openai.bodies.extras import Extras
from server.openai.bodies.logprobs import CompletionLogprobsBuilder

Deltas = DeltaStream
KIND = "text_completion"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletionContext(common.Head):
    echo: list[str]  # per choice: text to put before the completion ("" without echo)
    logprobs: int | None
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
    builders: list[CompletionLogprobsBuilder] | None, index: int, delta: Delta
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


def stream_completion(
    ctx: CompletionContext, deltas: Deltas, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """Each event's JSON: the echoed prompts, text chunks, then usage if asked for. A plain function
    handing out the loop itself, so that no generator sits between it and the SSE writer."""
    encoder = common.encoder(ctx, KIND)
    builders = _builders(ctx)
    if ctx.extras is not None:
        counts = Counts([len(ids) for ids in ctx.extras.prompt_ids], ctx.n)
        stream = _Stream(ctx, ctx.extras, builders, [False] * ctx.num_choices)
        return common.stream_extended(
            ctx, encoder, deltas, include_usage, counts, ctx.extras, _extended_choice, stream
        )
    echoes = [
        encoder.choice({"index": i, "text": echo, "logprobs": None, "finish_reason": None})
        for i, echo in enumerate(ctx.echo)
        if echo
    ]
    cache = CacheHits(ctx.n, ctx.num_choices // ctx.n)
    return common.stream_plain(
        ctx, encoder, deltas, include_usage, cache, _chunk_choice, builders, before=echoes
    )


@dataclass(slots=True)
class _Stream:
    """What a stream with vLLM's extensions keeps between deltas."""

    ctx: CompletionContext
    extras: Extras
    builders: list[CompletionLogprobsBuilder] | None
    started: list[bool]  # per choice: its first chunk is out


def _extended_choice(stream: _Stream, index: int, delta: Delta) -> dict[str, Any] | None:
    """As vLLM streams with its extensions: a choice's first chunk is sent even when empty, and
    carries the echoed prompt (with its logprob columns) and prompt_token_ids."""
    first = not stream.started[index]
    stream.started[index] = True
    if not (first or delta.text or delta.finish_reason or delta.logprobs):
        return None
    ctx, extras, builders = stream.ctx, stream.extras, stream.builders
    echoed = _echo_columns(ctx, extras, index, delta, builders) if first else None
    choice = _chunk_choice(builders, index, delta)
    if first:
        _put_first(ctx, extras, index, choice, echoed)
    return choice


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
    cache = CacheHits(ctx.n, ctx.num_choices // ctx.n)
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
                cache.note(index, delta)
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, [r for r in reasons if r])
    choices: list[dict[str, Any]] = [
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
    if extras is not None:  # vLLM's fields, where asked for
        for i, choice in enumerate(choices):
            if extras.return_token_ids:
                choice["token_ids"] = token_ids[i]
            choice.update(common.prompt_fields(extras, prompt_logprobs[i], extras.prompt_ids[i // ctx.n]))
    return common.answer(
        ctx, "text_completion", choices, usage(ctx.prompt_tokens, completion_tokens, cache.total())
    )
