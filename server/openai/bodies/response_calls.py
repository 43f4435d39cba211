"""Responses whose answer may hold function calls: the text before the calls as a `message` item,
then one `function_call` item per call (`id` fc_..., `call_id` the id the next request's
`function_call_output` answers), whole or streamed.

A stream announces each call with `response.output_item.added` (its name, empty arguments), sends
its arguments in `response.function_call_arguments.delta` fragments as the model writes them, and
closes it with `.done` and `response.output_item.done` when the next call starts or the answer
ends; the message before the calls is closed when the first call starts. The message is announced
only once its text holds more than white space (or the answer ended with no call), so that a
whole response and a streamed one have the same items. A call's arguments are the model's JSON
text, stripped; the calls the model left unfinished (max_output_tokens) are `incomplete`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from server.engine.fanout import DeltaStream
from server.openai.bodies.responses import (
    Ending,
    ResponseContext,
    ResponsesStream,
    collect_text,
    final,
    message,
)
from server.openai.bodies.tool_output import ToolOutput
from server.openai.responses_input import item_id
from server.prompt.tool_parse import CallPiece, CallScanner


def _call_item(name: str, tools: ToolOutput) -> dict[str, Any]:
    return {
        "id": item_id("fc"),
        "type": "function_call",
        "status": "in_progress",
        "call_id": tools.new_id(),  # in the shape the prompt format takes back in the history
        "name": name,
        "arguments": "",
    }


def _close(call: dict[str, Any], complete: bool) -> None:
    call["arguments"] = call["arguments"].strip() or "{}"
    call["status"] = "completed" if complete else "incomplete"


def _output(
    ctx: ResponseContext, content: str, calls: list[dict[str, Any]], end: Ending
) -> list[dict[str, Any]]:
    if not calls:
        return [message(ctx, content, end.status)]
    return ([message(ctx, content, "completed")] if content.strip() else []) + calls


def _complete(scanner: CallScanner, tools: ToolOutput) -> bool:
    """Whether the calls' JSON is whole and names offered tools (else the last call is unfinished)."""
    return scanner.calls(tools.offered) is not None


async def collect_tool_response(
    ctx: ResponseContext, tools: ToolOutput, deltas: DeltaStream
) -> dict[str, Any]:
    text, end = await collect_text(ctx, deltas)
    scanner = tools.scanner()
    _, pieces = scanner.feed(text)
    scanner.finish()
    calls: list[dict[str, Any]] = []
    at: dict[int, int] = {}  # the scanner's index of a call -> its place in `calls`
    for piece in pieces:
        if piece.name is not None:
            at[piece.index] = len(calls)
            calls.append(_call_item(piece.name, tools))
        calls[at[piece.index]]["arguments"] += piece.arguments
    for i, call in enumerate(calls):
        _close(call, i < len(calls) - 1 or _complete(scanner, tools))
    return final(ctx, _output(ctx, "".join(scanner.content), calls, end), end)


class _CallEvents:
    """The events of one stream's calls, on `stream` (its sequence, and the items for a failure)."""

    def __init__(self, stream: ResponsesStream, tools: ToolOutput) -> None:
        self.stream = stream
        self.tools = tools
        self.blank = ""  # white space before any other text: held until text or a call follows
        self.at: dict[int, int] = {}  # the scanner's index of a call -> its place in stream.calls

    def _index(self, call: int) -> int:
        """The output index of the call at `call` in stream.calls (after the message, if any)."""
        return call + (1 if self.stream.opened else 0)

    def text(self, text: str) -> list[bytes]:
        stream = self.stream
        if stream.calls or not text:
            return []
        events: list[bytes] = []
        if not stream.opened:
            self.blank += text
            if not self.blank.strip():
                return []
            text, self.blank = self.blank, ""
            events += stream.opening()
        return [*events, stream.delta(text)]

    def piece(self, piece: CallPiece) -> list[bytes]:
        stream, events = self.stream, []
        if piece.name is not None:
            if stream.calls:
                events += self.close(len(stream.calls) - 1, True)
            elif stream.opened:
                events += stream.message_done("completed")
            self.at[piece.index] = len(stream.calls)
            stream.calls.append(_call_item(piece.name, self.tools))
            added = {"output_index": self._index(len(stream.calls) - 1), "item": dict(stream.calls[-1])}
            events.append(stream.event("response.output_item.added", added))
        if piece.arguments:
            place = self.at[piece.index]
            call = stream.calls[place]
            call["arguments"] += piece.arguments
            where = {"item_id": call["id"], "output_index": self._index(place), "delta": piece.arguments}
            events.append(stream.event("response.function_call_arguments.delta", where))
        return events

    def close(self, index: int, complete: bool) -> list[bytes]:
        call = self.stream.calls[index]
        _close(call, complete)
        at = self._index(index)
        done = {"item_id": call["id"], "output_index": at, "arguments": call["arguments"]}
        return [
            self.stream.event("response.function_call_arguments.done", done),
            self.stream.event("response.output_item.done", {"output_index": at, "item": call}),
        ]

    def ending(self, end: Ending, complete: bool) -> list[bytes]:
        stream = self.stream
        if stream.calls:
            return self.close(len(stream.calls) - 1, complete)
        events = [] if stream.opened else stream.opening()
        if self.blank:
            events.append(stream.delta(self.blank))
            self.blank = ""
        return events + stream.message_done(end.status)


async def stream_tool_response(
    stream: ResponsesStream, tools: ToolOutput, deltas: DeltaStream
) -> AsyncGenerator[bytes, None]:
    """The event sequence of a response that may hold calls; `stream.failure` tells a failure."""
    ctx = stream.ctx
    for event in stream.starting():
        yield event
    scanner, calls, end = tools.scanner(), _CallEvents(stream, tools), Ending()
    async with contextlib.aclosing(deltas):
        async for _, delta in deltas:
            end.tokens += len(delta.token_ids)
            ctx.timer.token()
            text, pieces = scanner.feed(delta.text)
            if delta.finish_reason:
                end.reason, end.cached = delta.finish_reason, delta.num_cached_prompt_tokens
                text += scanner.finish()
            for event in calls.text(text):
                yield event
            for piece in pieces:
                for event in calls.piece(piece):
                    yield event
    ctx.timer.finish(ctx.prompt_tokens, end.tokens, [end.reason] if end.reason else [])
    for event in calls.ending(end, _complete(scanner, tools)):
        yield event
    yield stream.completion(final(ctx, _output(ctx, "".join(stream.texts), stream.calls, end), end))
