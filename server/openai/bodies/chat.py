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
from server.openai.bodies import common
from server.openai.bodies.chunks import ChunkEncoder, usage
from server.openai.bodies.common import CacheHits, Counts
from server.openai.bodies.extras import Extras
from server.openai.bodies.logprobs import chat_entry, chat_logprobs
from server.openai.bodies.tool_output import ToolOutput

Deltas = DeltaStream
KIND = "chat.completion.chunk"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatContext(common.Head):
    n: int  # choices in all: n per conversation x conversations (a batch has several)
    top_logprobs: int | None  # None: no logprobs asked for
    conversations: int = 1
    extras: Extras | None = None  # vLLM's output extensions, when any is asked for
    echo: str = ""  # vLLM's echo: text the answer starts with (the message it continues)
    tokens_by_id: bool = False  # vLLM's return_tokens_as_token_ids: logprob tokens as "token_id:<id>"
    tools: ToolOutput | None = None  # the answer may hold tool calls, read as the format writes them


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


def stream_chat(ctx: ChatContext, deltas: Deltas, include_usage: bool) -> AsyncGenerator[bytes, None]:
    """Each event's JSON: role chunks once output starts, content chunks, then usage if asked for.
    A plain function handing out the loop itself, so that no generator sits between it and the
    SSE writer."""
    encoder = common.encoder(ctx, KIND)
    if ctx.extras is not None or ctx.echo:
        extras = ctx.extras or Extras([[]])
        counts = Counts([ctx.prompt_tokens], ctx.n)
        return common.stream_extended(
            ctx,
            encoder,
            deltas,
            include_usage,
            counts,
            extras,
            _extended_choice,
            ctx,
            at_first=lambda: _opening(ctx, extras, encoder, counts),
        )
    roles = [encoder.choice(_opening_choice(i, {"role": "assistant", "content": ""})) for i in range(ctx.n)]
    cache = CacheHits(ctx.n // ctx.conversations, ctx.conversations)
    return common.stream_plain(ctx, encoder, deltas, include_usage, cache, _chunk_choice, ctx, at_first=roles)


async def collect_chat(ctx: ChatContext, deltas: Deltas) -> dict[str, Any]:
    """The whole answer as a ChatCompletion-shaped dict (None fields included, as `model_dump()`)."""
    texts: list[list[str]] = [[] for _ in range(ctx.n)]
    entries: list[list[dict[str, Any]]] = [[] for _ in range(ctx.n)]
    reasons: list[str | None] = [None] * ctx.n
    stops: list[int | str | None] = [None] * ctx.n
    completion_tokens = 0
    cache = CacheHits(ctx.n // ctx.conversations, ctx.conversations)
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
            if top_n is not None and delta.logprobs:
                entries[index].extend(chat_entry(e, top_n, ctx.tokens_by_id) for e in delta.logprobs)
            if delta.finish_reason:
                reasons[index] = delta.finish_reason
                stops[index] = delta.stop_reason
                cache.note(index, delta)
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, [r for r in reasons if r])
    choices: list[dict[str, Any]] = [
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
    body = common.answer(
        ctx, "chat.completion", choices, usage(ctx.prompt_tokens, completion_tokens, cache.total())
    )
    body.update(
        # Null, as vLLM sends them: the openai SDK's objects have no attribute for an absent extra
        # field, so `completion.prompt_logprobs` would raise instead of giving None.
        prompt_logprobs=None,
        prompt_token_ids=None,
    )
    extras = ctx.extras
    if extras is not None:  # vLLM's fields, where asked for: token_ids per choice, the prompt's at the top
        if extras.return_token_ids:
            for choice, ids in zip(choices, token_ids, strict=True):
                choice["token_ids"] = ids
        body.update(common.prompt_fields(extras, prompt_logprobs, extras.prompt_ids[0]))
    return body


def _extended_choice(ctx: ChatContext, index: int, delta: Delta) -> dict[str, Any] | None:
    """With token ids asked for, a delta of ids alone (part of a character) is a chunk too."""
    extras = ctx.extras
    if (
        delta.text
        or delta.finish_reason
        or delta.logprobs
        or (extras and extras.return_token_ids and delta.token_ids)
    ):
        return _chunk_choice(ctx, index, delta)
    return None


def _opening_choice(index: int, delta: dict[str, str]) -> dict[str, Any]:
    """A chunk choice before any token: the role, or the echoed text."""
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


def _opening(ctx: ChatContext, extras: Extras, encoder: ChunkEncoder, counts: Counts) -> list[bytes]:
    """The role chunk of every choice (with the prompt's ids), then the echoed text of each."""
    so_far = {"usage": usage(ctx.prompt_tokens, 0, counts.hits[0])} if extras.continuous_usage else {}
    ids = {"prompt_token_ids": extras.prompt_ids[0]} if extras.return_token_ids else {}
    events = [
        encoder.choice_with(_opening_choice(i, {"role": "assistant", "content": ""}), so_far | ids)
        for i in range(ctx.n)
    ]
    for i in range(ctx.n) if ctx.echo else ():
        events.append(encoder.choice_with(_opening_choice(i, {"content": ctx.echo}), so_far))
    return events
