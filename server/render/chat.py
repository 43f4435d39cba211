"""Chat completion bodies: the whole answer, or `chat.completion.chunk` events as deltas arrive."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from server.engine.base import Delta
from server.metrics import RequestTimer
from server.render.logprobs import chat_logprobs
from server.schemas.chat import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceLogprobs,
    ChunkDelta,
)
from server.schemas.common import Usage

Deltas = AsyncGenerator[tuple[int, Delta], None]


@dataclass(frozen=True, slots=True)
class ChatContext:
    id: str
    created: int
    model: str
    prompt_tokens: int
    n: int
    top_logprobs: int | None  # None: no logprobs asked for
    timer: RequestTimer


def _logprobs(ctx: ChatContext, delta: Delta) -> ChoiceLogprobs | None:
    if ctx.top_logprobs is None or delta.logprobs is None:
        return None
    return chat_logprobs(delta.logprobs, ctx.top_logprobs)


async def stream_chat(ctx: ChatContext, deltas: Deltas, include_usage: bool) -> AsyncGenerator[str, None]:
    def chunk(*choices: ChatChunkChoice, usage: Usage | None = None) -> str:
        body = ChatCompletionChunk(
            id=ctx.id, created=ctx.created, model=ctx.model, choices=list(choices), usage=usage
        )
        return body.model_dump_json(exclude_none=True)

    completion_tokens = 0
    reasons: list[str] = []
    async with contextlib.aclosing(deltas):
        for i in range(ctx.n):
            yield chunk(ChatChunkChoice(index=i, delta=ChunkDelta(role="assistant", content="")))
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
            if delta.text or delta.finish_reason or delta.logprobs:
                yield chunk(
                    ChatChunkChoice(
                        index=index,
                        delta=ChunkDelta(content=delta.text),
                        logprobs=_logprobs(ctx, delta),
                        finish_reason=delta.finish_reason,
                    )
                )
    if include_usage:
        yield chunk(usage=Usage.of(ctx.prompt_tokens, completion_tokens))
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)


async def collect_chat(ctx: ChatContext, deltas: Deltas) -> ChatCompletion:
    texts: list[list[str]] = [[] for _ in range(ctx.n)]
    entries: list[ChoiceLogprobs] = [ChoiceLogprobs(content=[]) for _ in range(ctx.n)]
    reasons: list[str | None] = [None] * ctx.n
    completion_tokens = 0
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            texts[index].append(delta.text)
            part = _logprobs(ctx, delta)
            if part is not None and part.content:
                entries[index].content.extend(part.content)  # type: ignore[union-attr]
            if delta.finish_reason:
                reasons[index] = delta.finish_reason
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, [r for r in reasons if r])
    choices = [
        ChatChoice(
            index=i,
            message=AssistantMessage(content="".join(texts[i])),
            logprobs=entries[i] if ctx.top_logprobs is not None else None,
            finish_reason=reasons[i],
        )
        for i in range(ctx.n)
    ]
    return ChatCompletion(
        id=ctx.id,
        created=ctx.created,
        model=ctx.model,
        choices=choices,
        usage=Usage.of(ctx.prompt_tokens, completion_tokens),
    )
