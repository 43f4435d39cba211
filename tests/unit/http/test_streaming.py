"""EventStream over plain ASGI: framing, [DONE], error events, keep-alive pings, and a client that
goes away cancels the body and closes the event source (which is what aborts engine requests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from server.errors import EngineUnavailableError
from server.http.streaming import EventStream


class Client:
    """ASGI receive/send of one HTTP request whose body was already read."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    @property
    def finished(self) -> bool:
        return self.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def run(response: EventStream, client: Client) -> None:
    await response({"type": "http", "method": "POST"}, client.receive, client.send)


async def payloads(*items: bytes) -> AsyncGenerator[bytes, None]:
    for item in items:
        yield item


async def test_each_payload_is_one_data_event_then_done() -> None:
    client = Client()
    await run(EventStream(payloads(b'{"a":1}', b'{"b":"\\n"}')), client)
    assert client.messages[0]["status"] == 200
    assert client.headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert client.headers[b"cache-control"] == b"no-cache"
    assert client.headers[b"x-accel-buffering"] == b"no"
    assert client.body == b'data: {"a":1}\n\ndata: {"b":"\\n"}\n\ndata: [DONE]\n\n'
    assert [m["body"] for m in client.messages[1:-1]] == [
        b'data: {"a":1}\n\n',
        b'data: {"b":"\\n"}\n\n',
        b"data: [DONE]\n\n",
    ]
    assert client.finished


async def test_an_error_after_the_start_becomes_an_error_event_before_done() -> None:
    async def failing() -> AsyncGenerator[bytes, None]:
        yield b"{}"
        raise EngineUnavailableError("The engine is not running.")

    async def crashing() -> AsyncGenerator[bytes, None]:
        yield b"{}"
        raise RuntimeError("boom")

    for events, code in ((failing(), "engine_unavailable"), (crashing(), None)):
        client = Client()
        await run(EventStream(events), client)
        frames = client.body.split(b"\n\n")
        assert frames[0] == b"data: {}"
        error = json.loads(frames[1].removeprefix(b"data: "))
        assert set(error["error"]) == {"message", "type", "param", "code"}
        assert error["error"]["code"] == code
        assert frames[2:] == [b"data: [DONE]", b""]
        assert client.finished


async def test_client_disconnect_cancels_the_body_and_closes_the_event_source() -> None:
    closed = asyncio.Event()
    started = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                started.set()
                yield b"{}"
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    client = Client()
    task = asyncio.create_task(run(EventStream(endless()), client))
    await started.wait()
    client.gone.set()
    await asyncio.wait_for(task, 2)
    assert closed.is_set()
    assert b"[DONE]" not in client.body


async def test_a_quiet_stream_gets_ping_comments() -> None:
    async def slow() -> AsyncGenerator[bytes, None]:
        await asyncio.sleep(0.25)
        yield b"{}"

    client = Client()
    await run(EventStream(slow(), ping_seconds=0.05), client)
    pings = [m["body"] for m in client.messages[1:-1] if m["body"].startswith(b": ping")]
    assert len(pings) >= 2
    assert all(p.endswith(b"\n\n") and p.count(b"\n") == 2 for p in pings)
    # On a busy machine a ping may also fall between the last event and [DONE].
    events = b"".join(m["body"] for m in client.messages[1:] if not m["body"].startswith(b": ping"))
    assert events.endswith(b"data: {}\n\ndata: [DONE]\n\n")
    assert client.finished


async def test_the_drain_deadline_ends_the_stream_with_a_shutting_down_event_and_a_finished_body() -> None:
    closed = asyncio.Event()
    stop = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                yield b"{}"
                stop.set()  # the deadline comes while the stream is mid-way
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    client = Client()
    await asyncio.wait_for(run(EventStream(endless(), stop=stop.wait), client), 2)
    assert closed.is_set()  # the event source is closed: its engine requests are aborted
    events = [e for e in client.body.split(b"\n\n") if e]
    assert events[0] == b"data: {}"
    assert events[-1] == b"data: [DONE]"
    assert json.loads(events[-2].removeprefix(b"data: "))["error"] == {
        "message": "The server is shutting down.",
        "type": "service_unavailable",
        "param": None,
        "code": "shutting_down",
    }
    assert client.finished  # the last ASGI message ends the body: the chunked encoding is terminated
