"""Client and AsyncClient are two shells over one core (clients.protocol): given the same answers,
they must send the same requests, hand over the same deltas and raise the same errors. An in-memory
transport plays the server, since the real one cannot be made to break a stream or refuse on demand;
each case runs through both shells and is checked against what it should give, not only for parity.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from clients import APIConnectionError, APIError, AsyncClient, Client, RetryPolicy
from clients.protocol import completion_call
from clients.sse import EventStream, LineDecoder
from clients.types import Delta, Usage

FAST = RetryPolicy(max_retries=2, base_delay_s=0.0)
ERROR = {"error": {"message": "slow down", "type": "rate_limit_error", "param": "n", "code": "busy"}}
WHOLE = {
    "id": "1",
    "model": "m",
    "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
}
MODELS = {"data": [{"id": "first", "owned_by": "us"}, {"id": "second"}]}


def chunk(**choice: Any) -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, **choice}]}) + "\n\n"


STREAM = (
    ": ping\n\n"
    + chunk(delta={"role": "assistant"})
    + chunk(delta={"content": "a"})
    + chunk(delta={"content": "b"}, finish_reason="length")
    + 'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    + "data: [DONE]\n\n"
    + "data: {not json, and after the end}\n\n"
)


class Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that arrives in the given pieces, as a network may cut it."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


class Breaks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that sends its first bytes, then fails as a dropped or stalled connection does."""

    def __init__(self, first: str, error: type[httpx.TransportError]) -> None:
        self.first, self.error = first.encode(), error

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise self.error("gone")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise self.error("gone")


Answer = Callable[[], httpx.Response] | type[httpx.TransportError]


def sse(body: str | httpx.SyncByteStream) -> Answer:
    if isinstance(body, str):
        return lambda: httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    return lambda: httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"})


def answer(status: int, body: Any = None, **headers: str) -> Answer:
    if isinstance(body, str):
        return lambda: httpx.Response(status, text=body, headers=headers)
    return lambda: httpx.Response(status, json=body, headers=headers)


@dataclass
class Outcome:
    """All a caller and the server can observe of one call."""

    requests: list[tuple[str, str, str | None, Any]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    error: tuple[str, str, Any] | None = None


def transport(script: list[Answer], outcome: Outcome) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        outcome.requests.append(
            (request.method, str(request.url), request.headers.get("authorization"), body)
        )
        step = script[len(outcome.requests) - 1]
        if isinstance(step, type):
            raise step("refused", request=request)
        return step()

    return httpx.MockTransport(handle)


def note_error(outcome: Outcome, exc: Exception) -> None:
    detail = exc.status if isinstance(exc, APIError) else getattr(exc, "timeout", None)
    outcome.error = (type(exc).__name__, str(exc), detail)


def run_sync(script: list[Answer], method: str, args: tuple[Any, ...], model: str | None) -> Outcome:
    outcome = Outcome()
    mock = transport(script, outcome)
    with Client("http://server", "k", model=model, retry=FAST, transport=mock) as client:
        try:
            if method.endswith("_stream"):
                for delta in getattr(client, method)(*args):
                    outcome.results.append(delta)
            else:
                outcome.results.append(getattr(client, method)(*args))
        except (APIError, APIConnectionError) as exc:
            note_error(outcome, exc)
    return outcome


def run_async(script: list[Answer], method: str, args: tuple[Any, ...], model: str | None) -> Outcome:
    outcome = Outcome()

    async def run() -> None:
        mock = transport(script, outcome)
        async with AsyncClient("http://server", "k", model=model, retry=FAST, transport=mock) as client:
            try:
                if method.endswith("_stream"):
                    async for delta in getattr(client, method)(*args):
                        outcome.results.append(delta)
                else:
                    outcome.results.append(await getattr(client, method)(*args))
            except (APIError, APIConnectionError) as exc:
                note_error(outcome, exc)

    asyncio.run(run())
    return outcome


def both(script: list[Answer], method: str, *args: Any, model: str | None = None) -> Outcome:
    """The call through Client, and through AsyncClient, against the same script of answers."""
    sync = run_sync(script, method, args, model)
    assert run_async(script, method, args, model) == sync
    return sync


HELLO = [{"role": "user", "content": "x"}]


def test_a_stream_asks_the_model_retries_its_start_and_yields_the_same_deltas() -> None:
    got = both(
        [answer(200, MODELS), answer(503, ERROR, **{"retry-after": "0"}), sse(STREAM)], "chat_stream", HELLO
    )
    assert got.error is None
    assert got.results == [
        Delta(0, "", role="assistant"),
        Delta(0, "a"),
        Delta(0, "b", finish_reason="length"),
        Delta(-1, "", usage=Usage(3, 2, 5)),  # the total counted where the server left it out
    ]
    body = {"messages": HELLO, "model": "first", "stream": True, "stream_options": {"include_usage": True}}
    assert got.requests == [
        ("GET", "http://server/v1/models", "Bearer k", None),
        ("POST", "http://server/v1/chat/completions", "Bearer k", body),
        ("POST", "http://server/v1/chat/completions", "Bearer k", body),
    ]


def test_whole_answers_and_model_lists_parse_alike() -> None:
    models = both([answer(200, MODELS)], "models")
    assert [m.id for m in models.results[0]] == ["first", "second"]
    chat = both([answer(200, MODELS), answer(200, WHOLE)], "chat", HELLO)
    assert chat.results[0].text == "hi" and chat.requests[1][3] == {"messages": HELLO, "model": "first"}


def test_a_callers_stream_options_are_kept_and_sampling_fields_pass_through() -> None:
    call = completion_call([1, 2], "m", True, {"stream_options": {"include_usage": False}, "seed": 3})
    assert (call.method, call.path) == ("POST", "/completions")
    assert call.body == {
        "prompt": [1, 2],
        "seed": 3,
        "stream_options": {"include_usage": False},
        "model": "m",
        "stream": True,
    }


BUSY = answer(503, ERROR, **{"retry-after": "0"})


@pytest.mark.parametrize(
    ("script", "error", "tries", "texts"),
    [
        ([answer(400, ERROR)], ("APIError", "400: slow down", 400), 1, []),
        ([BUSY, BUSY, BUSY], ("APIError", "503: slow down", 503), 3, []),
        (
            [answer(401, "<html>who are you</html>")],
            ("APIError", "401: <html>who are you</html>", 401),
            1,
            [],
        ),
        (
            [httpx.ConnectError, httpx.ConnectError, httpx.ConnectError],
            ("APIConnectionError", "POST /completions: ConnectError('refused')", False),
            3,
            [],
        ),
        (
            [httpx.ConnectTimeout] * 3,
            ("APIConnectionError", "POST /completions: ConnectTimeout('refused')", True),
            3,
            [],
        ),
        (
            [sse(Breaks(chunk(text="a"), httpx.ReadError))],
            ("APIConnectionError", "stream broken: gone", False),
            1,  # the caller has "a" already: repeating the request would repeat it
            ["a"],
        ),
        (
            [sse(Breaks(chunk(text="a"), httpx.ReadTimeout))],
            ("APIConnectionError", "stream stalled: gone", True),
            1,
            ["a"],
        ),
        (
            [sse(chunk(text="a") + f"data: {json.dumps(ERROR)}\n\n")],
            ("APIError", "stream: slow down", None),
            1,
            ["a"],
        ),
    ],
    ids=[
        "bad-request",
        "busy-thrice",
        "not-json",
        "refused",
        "connect-timeout",
        "broken",
        "stalled",
        "error-event",
    ],
)
def test_both_clients_fail_alike(
    script: list[Answer], error: tuple[str, str, Any], tries: int, texts: list[str]
) -> None:
    got = both(script, "complete_stream", "x", model="m")
    assert got.error == error
    assert len(got.requests) == tries
    assert [d.text for d in got.results] == texts


def test_the_event_stream_ignores_everything_after_done() -> None:
    events = EventStream()
    assert events.feed(": ping") is None and events.feed("event: x") is None and events.feed("data:") is None
    assert events.feed('data: {"choices": []}') == {"choices": []}
    assert events.feed("data: [DONE]") is None and events.done
    assert events.feed(f"data: {json.dumps(ERROR)}") is None  # not raised: the stream is over


# Text a JSON encoder writes unescaped (ours does: orjson), that generic line readers take for line
# ends: LINE SEPARATOR, PARAGRAPH SEPARATOR, NEXT LINE; then characters of 2, 3 and 4 UTF-8 bytes.
SEPARATORS = "a\u2028b\u2029c\u0085d"
WIDE = "é日\U0001f600"


def raw_chunk(text: str) -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, "text": text}]}, ensure_ascii=False)


def cut(body: bytes, at: list[int]) -> list[bytes]:
    edges = [0, *at, len(body)]
    return [body[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def carriage_returns(body: bytes) -> list[int]:
    """Cut right after every CR: the LF of its CRLF comes in the next piece."""
    return [i + 1 for i, byte in enumerate(body) if byte == ord("\r")]


def inside_characters(body: bytes) -> list[int]:
    """Cut after the first byte of every multi-byte UTF-8 character."""
    return [i + 1 for i, byte in enumerate(body) if byte >= 0xC0]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("pieces", ["whole", "bytes", "after-cr", "inside-characters"])
def test_streamed_text_with_unicode_line_separators_arrives_whole_however_the_body_is_cut(
    newline: str, pieces: str
) -> None:
    """SSE lines end at CR, LF or CRLF only; U+2028, U+2029 and U+0085 inside a JSON string are text.
    Read with httpx's line reader, these streams split the JSON and raised JSONDecodeError."""
    events = [": ping", raw_chunk(SEPARATORS), raw_chunk(WIDE), raw_chunk("\u2028"), "data: [DONE]"]
    body = "".join(event + newline * 2 for event in events).encode()
    cuts = {
        "whole": [],
        "bytes": list(range(1, len(body))),
        "after-cr": carriage_returns(body),
        "inside-characters": inside_characters(body),
    }[pieces]
    got = both([sse(Pieces(cut(body, cuts)))], "complete_stream", "x", model="m")
    assert got.error is None
    assert [d.text for d in got.results] == [SEPARATORS, WIDE, "\u2028"]


def test_line_decoder_splits_at_cr_lf_and_crlf_only() -> None:
    lines = LineDecoder()
    assert lines.feed(b"a\xe2\x80") == []  # a line, and half of U+2028, not yet ended
    assert lines.feed(b"\xa8b\r") == ["a\u2028b"]  # a CR ends the line at once
    assert lines.feed(b"") == []
    assert lines.feed(b"\nc\r\r") == ["c", ""]  # that LF completed the CRLF; CR CR is an empty line
    assert lines.feed(b"\n") == []  # the LF of the second CRLF: no line of its own
    assert lines.feed(b"\xc2\x85\n\xff\n") == ["\u0085", "\ufffd"]  # bad UTF-8 replaced, as SSE says
    assert lines.feed(b"cut short") == []  # a last line without its end is never handed on
