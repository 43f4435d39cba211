"""Chat completion bodies: the whole answer, or `chat.completion.chunk` events as deltas arrive.

Both build plain dicts in the shapes of ChatCompletion / ChatCompletionChunk (server/schemas/chat.py)
rather than the models themselves: the stream encodes one small dict per token (chunks.py), the
whole answer is one dict for JSONResponse, the bytes `model_dump()` gave before.
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
from server.render.logprobs import chat_entry, chat_logprobs

Deltas = DeltaStream


@dataclass(frozen=True, slots=True)
class ChatContext:
    id: str
    created: int
    model: str
    prompt_tokens: int
    n: int
    top_logprobs: int | None  # None: no logprobs asked for
    timer: RequestTimer
    system_fingerprint: str


def _chunk_choice(ctx: ChatContext, index: int, delta: Delta) -> dict[str, Any]:
    """ChatChunkChoice: `logprobs` and `finish_reason` are sent as null until they have a value."""
    logprobs = None
    if ctx.top_logprobs is not None and delta.logprobs is not None:
        logprobs = chat_logprobs(delta.logprobs, ctx.top_logprobs)
    return {
        "index": index,
        "delta": {"content": delta.text},
        "logprobs": logprobs,
        "finish_reason": delta.finish_reason,
    }


async def stream_chat(ctx: ChatContext, deltas: Deltas, include_usage: bool) -> AsyncGenerator[bytes, None]:
    """Yields each event's JSON: role chunks once output starts, content chunks, then usage if asked for."""
    encoder = ChunkEncoder(ctx.id, "chat.completion.chunk", ctx.created, ctx.model, ctx.system_fingerprint)
    completion_tokens = 0
    reasons: list[str] = []
    role_sent = False
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            if not role_sent:
                # With the first output, not before the prefill, as OpenAI and vLLM do: clients and
                # benchmarks take the first chunk with choices as the first token (TTFT).
                role_sent = True
                for i in range(ctx.n):
                    role = {"role": "assistant", "content": ""}
                    yield encoder.choice({"index": i, "delta": role, "logprobs": None, "finish_reason": None})
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
            if delta.text or delta.finish_reason or delta.logprobs:
                yield encoder.choice(_chunk_choice(ctx, index, delta))
    if include_usage:
        yield encoder.usage(ctx.prompt_tokens, completion_tokens)
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)


async def collect_chat(ctx: ChatContext, deltas: Deltas) -> dict[str, Any]:
    """The whole answer as a ChatCompletion-shaped dict (None fields included, as `model_dump()`)."""
    texts: list[list[str]] = [[] for _ in range(ctx.n)]
    entries: list[list[dict[str, Any]]] = [[] for _ in range(ctx.n)]
    reasons: list[str | None] = [None] * ctx.n
    completion_tokens = 0
    top_n = ctx.top_logprobs
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            texts[index].append(delta.text)
            if top_n is not None and delta.logprobs:
                entries[index].extend(chat_entry(e, top_n) for e in delta.logprobs)
            if delta.finish_reason:
                reasons[index] = delta.finish_reason
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, [r for r in reasons if r])
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": "".join(texts[i]), "refusal": None},
            "logprobs": {"content": entries[i], "refusal": None} if top_n is not None else None,
            "finish_reason": reasons[i],
        }
        for i in range(ctx.n)
    ]
    return {
        "id": ctx.id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": choices,
        "usage": usage(ctx.prompt_tokens, completion_tokens),
        "system_fingerprint": ctx.system_fingerprint,
    }
