"""The asyncio client: the same calls as Client, awaited; streams are async iterators of deltas.

    async with AsyncClient("http://127.0.0.1:8000") as client:
        async for delta in client.chat_stream([{"role": "user", "content": "Hi"}], max_tokens=16):
            print(delta.text, end="", flush=True)

`max_connections` bounds the connection pool; a load generator sets it to its concurrency (httpx's
default of 100 would otherwise queue requests inside the client and hide them from the server).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from clients import _common
from clients.errors import APIConnectionError, APIError
from clients.retry import RetryPolicy
from clients.sse import aiter_events
from clients.types import Delta, Model, Response


class AsyncClient:
    """See Client for the arguments."""

    def __init__(
        self,
        base_url: str = _common.DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        model: str | None = None,
        timeout: float | httpx.Timeout | None = 600.0,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = _common.normalize_base_url(base_url)
        self.retry = _common.retry_policy(max_retries, retry)
        self._model = model
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_common.headers(api_key),
            timeout=_common.timeout(timeout),
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
        response = await self._send("GET", "/models", None, stream=False)
        return Model.parse_list(response.json())

    async def model(self) -> str:
        if self._model is None:
            self._model = (await self.models())[0].id
        return self._model

    async def chat(self, messages: Sequence[_common.Message], **params: Any) -> Response:
        body = _common.chat_body(messages, await self.model(), False, params)
        return Response.parse((await self._send("POST", "/chat/completions", body, stream=False)).json())

    async def chat_stream(self, messages: Sequence[_common.Message], **params: Any) -> AsyncIterator[Delta]:
        body = _common.chat_body(messages, await self.model(), True, params)
        async for delta in self._stream("/chat/completions", body):
            yield delta

    async def complete(self, prompt: str | list[int], **params: Any) -> Response:
        body = _common.completion_body(prompt, await self.model(), False, params)
        return Response.parse((await self._send("POST", "/completions", body, stream=False)).json())

    async def complete_stream(self, prompt: str | list[int], **params: Any) -> AsyncIterator[Delta]:
        body = _common.completion_body(prompt, await self.model(), True, params)
        async for delta in self._stream("/completions", body):
            yield delta

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[Delta]:
        response = await self._send("POST", path, body, stream=True)
        try:
            lines = response.aiter_lines()
            async for event in aiter_events(lines):
                for delta in Delta.parse(event):
                    yield delta
            async for _ in lines:  # to the end of the body after [DONE], so the connection is reused
                pass
        except httpx.TimeoutException as exc:
            raise APIConnectionError(f"stream stalled: {exc}", timeout=True) from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(f"stream broken: {exc}") from exc
        finally:
            await response.aclose()

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool
    ) -> httpx.Response:
        """As Client._send."""
        attempt = 0
        while True:
            failure: httpx.Headers | None = None
            try:
                request = self._http.build_request(method, path, json=body)
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                timed_out = isinstance(exc, httpx.TimeoutException)
                if not self.retry.should_retry(attempt, None):
                    raise APIConnectionError(f"{method} {path}: {exc!r}", timeout=timed_out) from exc
            else:
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                if not self.retry.should_retry(attempt, response.status_code):
                    raise APIError.from_response(response)
                failure = response.headers
            await asyncio.sleep(self.retry.delay_s(attempt, failure))
            attempt += 1
