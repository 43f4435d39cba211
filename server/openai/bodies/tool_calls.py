"""Chat answers that may hold tool calls, whole or streamed as OpenAI streams them: per call a first
delta with its index, id, type, name and the arguments so far, then `arguments` fragments; the last
chunk of a choice says finish_reason "tool_calls" when the answer ended with complete calls.

A whole answer is the plain answer (server/openai/bodies/chat.py) with its text read again: the
text before the calls stays `content` (null when there is none), the calls become `tool_calls`.
Calls cut off (max_tokens) do not parse: the answer is then the text as it came, finish_reason
"length".
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from server.openai.bodies import common
from server.openai.bodies.chat import KIND, ChatContext, Deltas, collect_chat
from server.openai.bodies.common import CacheHits
from server.openai.bodies.tool_output import ToolOutput
from server.prompt.tool_parse import CallPiece


async def collect_tool_chat(ctx: ChatContext, tools: ToolOutput, deltas: Deltas) -> dict[str, Any]:
    body = await collect_chat(ctx, deltas)
    for choice in body["choices"]:
        message = choice["message"]
        scanner = tools.scanner()
        scanner.feed(message["content"])
        scanner.finish()
        calls = scanner.calls(tools.offered)
        if calls is None:
            continue
        content = "".join(scanner.content)
        message["content"] = content if content.strip() else None
        message["tool_calls"] = [
            {"id": tools.new_id(), "type": "function", "function": {"name": name, "arguments": arguments}}
            for name, arguments in calls
        ]
        if choice["finish_reason"] == "stop":
            choice["finish_reason"] = "tool_calls"
    return body


def _piece(piece: CallPiece, ids: dict[int, str], tools: ToolOutput) -> dict[str, Any]:
    if piece.name is None:
        return {"index": piece.index, "function": {"arguments": piece.arguments}}
    ids[piece.index] = tools.new_id()
    return {
        "index": piece.index,
        "id": ids[piece.index],
        "type": "function",
        "function": {"name": piece.name, "arguments": piece.arguments},
    }


def _choice(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


async def stream_tool_chat(
    ctx: ChatContext, tools: ToolOutput, deltas: Deltas, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    encoder = common.encoder(ctx, KIND)
    scanners = [tools.scanner() for _ in range(ctx.n)]
    ids: list[dict[int, str]] = [{} for _ in range(ctx.n)]
    cache = CacheHits(ctx.n // ctx.conversations, ctx.conversations)
    completion_tokens, reasons, started = 0, [], False
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            if not started:
                started = True
                for i in range(ctx.n):
                    yield encoder.choice(_choice(i, {"role": "assistant"}))
            completion_tokens += len(delta.token_ids)
            ctx.timer.token()
            scanner = scanners[index]
            text, pieces = scanner.feed(delta.text)
            text += scanner.finish() if delta.finish_reason else ""
            out: dict[str, Any] = {"content": text} if text else {}
            if pieces:
                out["tool_calls"] = [_piece(p, ids[index], tools) for p in pieces]
            if out:
                yield encoder.choice(_choice(index, out))
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
                cache.note(index, delta)
                called = delta.finish_reason == "stop" and scanner.calls(tools.offered) is not None
                last = _choice(index, {}, "tool_calls" if called else delta.finish_reason)
                last["stop_reason"] = delta.stop_reason
                yield encoder.choice(last)
    if include_usage:
        yield encoder.usage(ctx.prompt_tokens, completion_tokens, cache.total())
    ctx.timer.finish(ctx.prompt_tokens, completion_tokens, reasons)
