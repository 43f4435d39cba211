"""Response objects of the Responses API, whole or as OpenAI's semantic stream events.

One engine sequence becomes one `message` output item with one `output_text` part (with function
tools, a message for the text and a `function_call` item per call: response_calls.py). A stream is
`response.created`, `response.in_progress`, then with the first output `response.output_item.added`
and `response.content_part.added`, a `response.output_text.delta` per piece of text, then
`response.output_text.done`, `response.content_part.done`, `response.output_item.done` and
`response.completed` (or `response.incomplete` when max_output_tokens cut it). Every event is
`event: <type>` + `data: <JSON>` and carries its `sequence_number`.

A stream that fails after it started (an engine error, the deadline, the drain) ends with an
`error` event (the error's own code, as the other endpoints' error events carry it) and
`response.failed`, whose response carries what was written so far; `ResponsesStream.failure`
builds both, the SSE writer (server/http/streaming.py) sends them. No `[DONE]`: OpenAI's Responses
streams end with their last event.

The bodies are plain dicts, encoded with orjson, as chat's are (chunks.py); the tests hold them to
the openai SDK's models of the published spec.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from server.engine.fanout import DeltaStream
from server.errors import APIError
from server.observability.metrics import RequestTimer
from server.openai.bodies.tool_output import ToolOutput

Finished = Callable[[dict[str, Any]], None]


@dataclass(kw_only=True)
class ResponseContext:
    """What a response says besides its output: `echo` holds the request's fields the response
    object repeats (instructions, temperature, text, tools ...). `finished(body)` is called with the
    final object of a completed or incomplete response (the route stores it there)."""

    id: str
    created_at: int
    model: str
    prompt_tokens: int
    timer: RequestTimer
    echo: dict[str, Any]
    message_id: str
    finished: Finished | None = None
    tools: ToolOutput | None = None  # how to read calls in the answer; None: it holds none


def usage(input_tokens: int, output_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message(ctx: ResponseContext, text: str | None, status: str) -> dict[str, Any]:
    """The output message item; `text` None: no content part yet."""
    content = [] if text is None else [text_part(text)]
    return {
        "id": ctx.message_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def response(
    ctx: ResponseContext,
    status: str,
    output: list[dict[str, Any]],
    body_usage: dict[str, Any] | None = None,
    *,
    incomplete: bool = False,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = {
        "id": ctx.id,
        "object": "response",
        "created_at": ctx.created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "model": ctx.model,
        "output": output,
        "usage": body_usage,
        **ctx.echo,
    }
    if status == "completed":
        body["completed_at"] = int(time.time())
    return body


@dataclass(slots=True)
class Ending:
    """How the engine's sequence ended: its finish reason, output tokens and cached prompt tokens."""

    reason: str | None = None
    tokens: int = 0
    cached: int = 0

    @property
    def status(self) -> str:
        """`length`: max_output_tokens (or the context) cut the answer."""
        return "incomplete" if self.reason == "length" else "completed"


def final(ctx: ResponseContext, output: list[dict[str, Any]], end: Ending) -> dict[str, Any]:
    """The finished response, handed to `ctx.finished`."""
    cut = end.status == "incomplete"
    body = response(ctx, end.status, output, usage(ctx.prompt_tokens, end.tokens, end.cached), incomplete=cut)
    if ctx.finished is not None:
        ctx.finished(body)
    return body


async def collect_text(ctx: ResponseContext, deltas: DeltaStream) -> tuple[str, Ending]:
    """The whole answer's text, and how it ended."""
    texts: list[str] = []
    end = Ending()
    async with contextlib.aclosing(deltas):
        async for _, delta in deltas:
            end.tokens += len(delta.token_ids)
            ctx.timer.token()
            texts.append(delta.text)
            if delta.finish_reason:
                end.reason, end.cached = delta.finish_reason, delta.num_cached_prompt_tokens
    ctx.timer.finish(ctx.prompt_tokens, end.tokens, [end.reason] if end.reason else [])
    return "".join(texts), end


async def collect_response(ctx: ResponseContext, deltas: DeltaStream) -> dict[str, Any]:
    text, end = await collect_text(ctx, deltas)
    return final(ctx, [message(ctx, text, end.status)], end)


@dataclass
class ResponsesStream:
    """One stream's events: the sequence numbers, and what the client has seen so far, so that a
    failure can be told in the same sequence with the text written until then."""

    ctx: ResponseContext
    sequence: int = 0
    opened: bool = False  # the message item and its part were announced
    texts: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)  # function_call items announced

    def starting(self) -> list[bytes]:
        started = response(self.ctx, "in_progress", [])
        return [
            self.event("response.created", {"response": started}),
            self.event("response.in_progress", {"response": started}),
        ]

    def event(self, kind: str, fields: dict[str, Any]) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.ctx.message_id, "output_index": 0, "content_index": 0}

    def opening(self) -> list[bytes]:
        self.opened = True
        return [
            self.event(
                "response.output_item.added",
                {"output_index": 0, "item": message(self.ctx, None, "in_progress")},
            ),
            self.event("response.content_part.added", {**self._where(), "part": text_part("")}),
        ]

    def delta(self, text: str) -> bytes:
        self.texts.append(text)
        return self.event("response.output_text.delta", {**self._where(), "delta": text, "logprobs": []})

    def message_done(self, status: str) -> list[bytes]:
        text = "".join(self.texts)
        item = message(self.ctx, text, status)
        return [
            self.event("response.output_text.done", {**self._where(), "text": text, "logprobs": []}),
            self.event("response.content_part.done", {**self._where(), "part": text_part(text)}),
            self.event("response.output_item.done", {"output_index": 0, "item": item}),
        ]

    def completion(self, body: dict[str, Any]) -> bytes:
        kind = "response.completed" if body["status"] == "completed" else "response.incomplete"
        return self.event(kind, {"response": body})

    def failure(self, exc: APIError) -> bytes:
        """`error`, then `response.failed` with the output so far (the open items incomplete). The
        response's error code is one of the spec's (`server_error`); the `error` event carries the
        server's own."""
        output = [message(self.ctx, "".join(self.texts), "incomplete")] if self.opened else []
        output += [
            {**call, "status": "incomplete" if call["status"] == "in_progress" else call["status"]}
            for call in self.calls
        ]
        failed = response(self.ctx, "failed", output, error={"code": "server_error", "message": exc.message})
        fields = {"code": exc.code, "message": exc.message, "param": exc.param}
        return self.event("error", fields) + self.event("response.failed", {"response": failed})


async def stream_response(stream: ResponsesStream, deltas: DeltaStream) -> AsyncGenerator[bytes, None]:
    """The whole event sequence of a response; hand `stream.failure` to the SSE writer."""
    ctx = stream.ctx
    for event in stream.starting():
        yield event
    end = Ending()
    async with contextlib.aclosing(deltas):
        async for _, delta in deltas:
            if not stream.opened:
                for event in stream.opening():
                    yield event
            end.tokens += len(delta.token_ids)
            ctx.timer.token()
            if delta.text:
                yield stream.delta(delta.text)
            if delta.finish_reason:
                end.reason, end.cached = delta.finish_reason, delta.num_cached_prompt_tokens
    if not stream.opened:
        for event in stream.opening():
            yield event
    ctx.timer.finish(ctx.prompt_tokens, end.tokens, [end.reason] if end.reason else [])
    for event in stream.message_done(end.status):
        yield event
    yield stream.completion(final(ctx, [message(ctx, "".join(stream.texts), end.status)], end))
