"""Legacy completion bodies: the whole answer, or `text_completion` events as deltas arrive.

Choice index = prompt index x n + sample index, as OpenAI numbers them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from server.engine.base import Delta
from server.metrics import RequestTimer
from server.render.logprobs import CompletionLogprobsBuilder
from server.schemas.common import Usage
from server.schemas.completions import Completion, CompletionChoice

Deltas = AsyncGenerator[tuple[int, Delta], None]


@dataclass(frozen=True, slots=True)
class CompletionContext:
    id: str
    created: int
    model: str
    prompt_tokens: int
    echo: list[str]  # per choice: text to put before the completion ("" without echo)
    logprobs: int | None
    timer: RequestTimer

    @property
    def num_choices(self) -> int:
        return len(self.echo)


def _builders(ctx: CompletionContext) -> list[CompletionLogprobsBuilder] | None:
    if ctx.logprobs is None:
        return None
    return [CompletionLogprobsBuilder(ctx.logprobs, len(e)) for e in ctx.echo]


async def stream_completion(
    ctx: CompletionContext, deltas: Deltas, include_usage: bool
) -> AsyncGenerator[str, None]:
    def chunk(choices: list[CompletionChoice], usage: Usage | None = None) -> str:
        body = Completion(id=ctx.id, created=ctx.created, model=ctx.model, choices=choices, usage=usage)
        return body.model_dump_json(exclude_none=True)

    builders = _builders(ctx)
    completion_tokens = 0
    reasons: list[str] = []
    async with contextlib.aclosing(deltas):
        for i, echo in enumerate(ctx.echo):
            if echo:
                yield chunk([CompletionChoice(index=i, text=echo, finish_reason=None)])
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
            if not (delta.text or delta.finish_reason or delta.logprobs):
                continue
            logprobs = builders[index].add(delta.logprobs or []) if builders else None
            choice = CompletionChoice(
                index=index, text=delta.text, logprobs=logprobs, finish_reason=delta.finish_reason
            )
            yield chunk([choice])
    if include_usage:
        yield chunk([], usage=Usage.of(ctx.prompt_tokens, completion_tokens))
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)


async def collect_completion(ctx: CompletionContext, deltas: Deltas) -> Completion:
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
        CompletionChoice(
            index=i,
            text="".join(texts[i]),
            logprobs=builders[i].value if builders else None,
            finish_reason=reasons[i],
        )
        for i in range(ctx.num_choices)
    ]
    return Completion(
        id=ctx.id,
        created=ctx.created,
        model=ctx.model,
        choices=choices,
        usage=Usage.of(ctx.prompt_tokens, completion_tokens),
    )
