"""Chat completion bodies: the whole answer, or `chat.completion.chunk` events as deltas arrive.

Both build plain dicts in the shapes of ChatCompletion / ChatCompletionChunk (server/openai/schemas/chat.py)
rather than the models themselves: the stream encodes one small dict per token (chunks.py), the
whole answer is one dict for JSONResponse, the bytes `model_dump()` gave before.
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
from server.openai.bodies.extras import Counts, Extras
from server.openai.bodies.logprobs import chat_entry, chat_logprobs, prompt_logprobs_field

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
    extras: Extras | None = None  # vLLM's output extensions, when any is asked for
    echo: str = ""  # vLLM's echo: text the answer starts with (the message it continues)
    tokens_by_id: bool = False  # vLLM's return_tokens_as_token_ids: logprob tokens as "token_id:<id>"


def _chunk_choice(ctx: ChatContext, index: int, delta: Delta) -> dict[str, Any]:
    """ChatChunkChoice: `logprobs` and `finish_reason` are sent as null until they have a value; the
    last chunk also says what stopped it (vLLM's `stop_reason`)."""
    logprobs = None
    if ctx.top_logprobs is not None and delta.logprobs is not None:
        logprobs = chat_logprobs(delta.logprobs, ctx.top_logprobs, ctx.tokens_by_id)
    choice = {
        "index": index,
        "delta": {"content": delta.text},
        "logprobs": logprobs,
        "finish_reason": delta.finish_reason,
    }
    if delta.finish_reason:
        choice["stop_reason"] = delta.stop_reason
    return choice


async def stream_chat(ctx: ChatContext, deltas: Deltas, include_usage: bool) -> AsyncGenerator[bytes, None]:
    """Yields each event's JSON: role chunks once output starts, content chunks, then usage if asked for."""
    if ctx.extras is not None or ctx.echo:
        async for event in _stream_extended(ctx, ctx.extras or Extras([[]]), deltas, include_usage):
            yield event
        return
    encoder = ChunkEncoder(ctx.id, "chat.completion.chunk", ctx.created, ctx.model, ctx.system_fingerprint)
    completion_tokens = 0
    cached = 0
    reasons: list[str] = []
    role_sent = False
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            if not role_sent:
                # With the first output, not before the prefill, as OpenAI and vLLM do: clients and
                # benchmarks take the first chunk with choices as the first token (TTFT).
                role_sent = True
                for i in range(ctx.n):
                    yield encoder.choice(_opening_choice(i, {"role": "assistant", "content": ""}))
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
                cached = delta.num_cached_prompt_tokens if index == 0 else cached
            if delta.text or delta.finish_reason or delta.logprobs:
                yield encoder.choice(_chunk_choice(ctx, index, delta))
    if include_usage:
        yield encoder.usage(ctx.prompt_tokens, completion_tokens, cached)
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)


async def collect_chat(ctx: ChatContext, deltas: Deltas) -> dict[str, Any]:
    """The whole answer as a ChatCompletion-shaped dict (None fields included, as `model_dump()`)."""
    texts: list[list[str]] = [[] for _ in range(ctx.n)]
    entries: list[list[dict[str, Any]]] = [[] for _ in range(ctx.n)]
    reasons: list[str | None] = [None] * ctx.n
    stops: list[int | str | None] = [None] * ctx.n
    completion_tokens = 0
    cached = 0
    top_n = ctx.top_logprobs
    token_ids: list[list[int]] = [[] for _ in range(ctx.n)]
    prompt_logprobs: list[Any] = []
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            texts[index].append(delta.text)
            if ctx.extras is not None:
                token_ids[index] += delta.token_ids
                prompt_logprobs += delta.prompt_logprobs or [] if index == 0 else []
            if index == 0:
                cached = delta.num_cached_prompt_tokens
            if top_n is not None and delta.logprobs:
                entries[index].extend(chat_entry(e, top_n, ctx.tokens_by_id) for e in delta.logprobs)
            if delta.finish_reason:
                reasons[index] = delta.finish_reason
                stops[index] = delta.stop_reason
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, [r for r in reasons if r])
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": ctx.echo + "".join(texts[i]), "refusal": None},
            "logprobs": {"content": entries[i], "refusal": None} if top_n is not None else None,
            "finish_reason": reasons[i],
            "stop_reason": stops[i],
            "token_ids": None,  # vLLM's fields are null when not asked for, never absent (below)
        }
        for i in range(ctx.n)
    ]
    body = {
        "id": ctx.id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": choices,
        "usage": usage(ctx.prompt_tokens, completion_tokens, cached),
        "system_fingerprint": ctx.system_fingerprint,
        # Null, as vLLM sends them: the openai SDK's objects have no attribute for an absent extra
        # field, so `completion.prompt_logprobs` would raise instead of giving None.
        "prompt_logprobs": None,
        "prompt_token_ids": None,
    }
    if ctx.extras is not None:
        _add_fields(ctx.extras, body, token_ids, prompt_logprobs)
    return body


def _add_fields(
    extras: Extras, body: dict[str, Any], token_ids: list[list[int]], prompt_logprobs: list[Any]
) -> None:
    """vLLM's fields of a whole answer, where asked for: token_ids per choice, the prompt's at the top."""
    if extras.return_token_ids:
        for choice, ids in zip(body["choices"], token_ids, strict=True):
            choice["token_ids"] = ids
    if extras.prompt_logprobs is not None:
        body["prompt_logprobs"] = prompt_logprobs_field(prompt_logprobs, extras.prompt_logprobs)
    if extras.return_token_ids:
        body["prompt_token_ids"] = extras.prompt_ids[0]


async def _stream_extended(
    ctx: ChatContext, extras: Extras, deltas: Deltas, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """As vLLM streams with its extensions: prompt_token_ids on the role chunks, the echoed text
    next, token_ids on every chunk and, with continuous usage, the usage so far on each."""
    encoder = ChunkEncoder(ctx.id, "chat.completion.chunk", ctx.created, ctx.model, ctx.system_fingerprint)
    counts = Counts([ctx.prompt_tokens], ctx.n)
    reasons: list[str] = []
    role_sent = False
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            counts.add(index, delta)
            if not role_sent:
                role_sent = True
                for event in _opening(ctx, extras, encoder, counts):
                    yield event
            ctx.timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
            if (
                delta.text
                or delta.finish_reason
                or delta.logprobs
                or (extras.return_token_ids and delta.token_ids)
            ):
                choice = _chunk_choice(ctx, index, delta)
                if extras.return_token_ids:
                    choice["token_ids"] = delta.token_ids
                usage_now = {"usage": counts.usage_of(index)} if extras.continuous_usage else {}
                yield encoder.choice_with(choice, usage_now)
    completion_tokens = sum(counts.completion)
    if include_usage:
        yield encoder.usage(ctx.prompt_tokens, completion_tokens, counts.cached[0])
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)


def _opening_choice(index: int, delta: dict[str, str]) -> dict[str, Any]:
    """A chunk choice before any token: the role, or the echoed text."""
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


def _opening(ctx: ChatContext, extras: Extras, encoder: ChunkEncoder, counts: Counts) -> list[bytes]:
    """The role chunk of every choice (with the prompt's ids), then the echoed text of each."""
    events: list[bytes] = []
    for i in range(ctx.n):
        fields: dict[str, Any] = (
            {"usage": usage(ctx.prompt_tokens, 0, counts.cached[0])} if extras.continuous_usage else {}
        )
        if extras.return_token_ids:
            fields["prompt_token_ids"] = extras.prompt_ids[0]
        events.append(encoder.choice_with(_opening_choice(i, {"role": "assistant", "content": ""}), fields))
    for i in range(ctx.n) if ctx.echo else ():
        fields = {"usage": usage(ctx.prompt_tokens, 0, counts.cached[0])} if extras.continuous_usage else {}
        events.append(encoder.choice_with(_opening_choice(i, {"content": ctx.echo}), fields))
    return events
