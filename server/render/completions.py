"""Legacy completion bodies: the whole answer, or `text_completion` events as deltas arrive.

Choice index = prompt index x n + sample index, as OpenAI numbers them. Plain dicts in the shapes of
Completion / CompletionChoice (server/schemas/completions.py), for the reasons given in chat.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from server.engine.base import Delta
from server.generation import DeltaStream
from server.metrics import RequestTimer
from server.render.chunks import ChunkEncoder, usage
from server.render.logprobs import CompletionLogprobsBuilder

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

    @property
    def num_choices(self) -> int:
        return len(self.echo)


def _builders(ctx: CompletionContext) -> list[CompletionLogprobsBuilder] | None:
    if ctx.logprobs is None:
        return None
    return [CompletionLogprobsBuilder(ctx.logprobs, len(e)) for e in ctx.echo]


def _chunk_choice(
    index: int, delta: Delta, builders: list[CompletionLogprobsBuilder] | None
) -> dict[str, Any]:
    """CompletionChoice: `logprobs` and `finish_reason` are null when they have no value, as in the
    whole answer (OpenAI's stream and whole answer share one shape)."""
    return {
        "index": index,
        "text": delta.text,
        "logprobs": builders[index].add(delta.logprobs or []) if builders else None,
        "finish_reason": delta.finish_reason,
    }


async def stream_completion(
    ctx: CompletionContext, deltas: Deltas, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """Yields each event's JSON: the echoed prompts, text chunks, then usage if asked for."""
    encoder = ChunkEncoder(ctx.id, "text_completion", ctx.created, ctx.model, ctx.system_fingerprint)
    builders = _builders(ctx)
    completion_tokens = 0
    reasons: list[str] = []
    async with contextlib.aclosing(deltas):
        for i, echo in enumerate(ctx.echo):
            if echo:
                yield encoder.choice({"index": i, "text": echo, "logprobs": None, "finish_reason": None})
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
            if delta.text or delta.finish_reason or delta.logprobs:
                yield encoder.choice(_chunk_choice(index, delta, builders))
    if include_usage:
        yield encoder.usage(ctx.prompt_tokens, completion_tokens)
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)


async def collect_completion(ctx: CompletionContext, deltas: Deltas) -> dict[str, Any]:
    """The whole answer as a Completion-shaped dict (None fields included, as `model_dump()`)."""
    texts: list[list[str]] = [[e] for e in ctx.echo]
    reasons: list[str | None] = [None] * ctx.num_choices
    builders = _builders(ctx)
    completion_tokens = 0
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            texts[index].append(delta.text)
            if builders and delta.logprobs:
                builders[index].add(delta.logprobs)
            if delta.finish_reason:
                reasons[index] = delta.finish_reason
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, [r for r in reasons if r])
    choices = [
        {
            "index": i,
            "text": "".join(texts[i]),
            "logprobs": builders[i].value if builders else None,
            "finish_reason": reasons[i],
        }
        for i in range(ctx.num_choices)
    ]
    return {
        "id": ctx.id,
        "object": "text_completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": choices,
        "usage": usage(ctx.prompt_tokens, completion_tokens),
        "system_fingerprint": ctx.system_fingerprint,
    }
