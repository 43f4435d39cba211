"""The asyncio client: the same calls as Client, awaited; streams are async iterators of deltas.

    async with AsyncClient("http://127.0.0.1:8000") as client:
        async for delta in client.chat_stream([{"role": "user", "content": "Hi"}], max_tokens=16):
            print(delta.text, end="", flush=True)

`max_connections` bounds the connection pool; a load generator sets it to its concurrency (httpx's
default of 100 would otherwise queue requests inside the client and hide them from the server).
As Client, it only does the I/O; clients.protocol decides the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from clients import protocol
from clients.protocol import Attempts, Call, DeltaStream, Message
from clients.retry import RetryPolicy
from clients.types import Delta, Model, Response


class AsyncClient:
    """See Client for the arguments."""

    def __init__(
        self,
        base_url: str = protocol.DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        model: str | None = None,
        timeout: float | httpx.Timeout | None = 600.0,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = protocol.normalize_base_url(base_url)
        self.retry = protocol.retry_policy(max_retries, retry)
        self._model = model
        self._http = httpx.AsyncClient(
            **protocol.http_options(self.base_url, api_key, timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def models(self) -> list[Model]:
        return Model.parse_list((await self._send(protocol.MODELS, stream=False)).json())

    async def model(self) -> str:
        if self._model is None:
            self._model = (await self.models())[0].id
        return self._model

    async def chat(self, messages: Sequence[Message], **params: Any) -> Response:
        call = protocol.chat_call(messages, await self.model(), False, params)
        return Response.parse((await self._send(call, stream=False)).json())

    async def chat_stream(self, messages: Sequence[Message], **params: Any) -> AsyncIterator[Delta]:
        async for delta in self._stream(protocol.chat_call(messages, await self.model(), True, params)):
            yield delta

    async def complete(self, prompt: str | list[int], **params: Any) -> Response:
        call = protocol.completion_call(prompt, await self.model(), False, params)
        return Response.parse((await self._send(call, stream=False)).json())

    async def complete_stream(self, prompt: str | list[int], **params: Any) -> AsyncIterator[Delta]:
        async for delta in self._stream(protocol.completion_call(prompt, await self.model(), True, params)):
            yield delta

    async def _stream(self, call: Call) -> AsyncIterator[Delta]:
        response = await self._send(call, stream=True)
        deltas = DeltaStream()
        try:
            with protocol.stream_errors():
                async for chunk in response.aiter_bytes():
                    for delta in deltas.feed(chunk):
                        yield delta
        finally:
            await response.aclose()

    async def _send(self, call: Call, *, stream: bool) -> httpx.Response:
        attempts = Attempts(self.retry, call)
        while True:
            try:
                response = await self._http.send(call.request(self._http), stream=stream)
            except httpx.TransportError as exc:
                wait_s = attempts.after_no_answer(exc)
            else:
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                wait_s = attempts.after_error_answer(response)
            await asyncio.sleep(wait_s)
