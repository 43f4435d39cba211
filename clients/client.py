"""The synchronous client: chat and completions, whole or streamed as deltas, with retries.

    from clients import Client

    with Client("http://127.0.0.1:8000") as client:
        print(client.chat([{"role": "user", "content": "Hi"}], max_tokens=16).text)
        for delta in client.chat_stream([{"role": "user", "content": "Hi"}], max_tokens=16):
            print(delta.text, end="", flush=True)

Works against any OpenAI-compatible server. Sampling parameters (temperature, seed, ignore_eos...)
are passed through as keyword arguments, unchecked: the server is the judge of what it accepts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from clients import _common
from clients.errors import APIConnectionError, APIError
from clients.retry import RetryPolicy
from clients.sse import iter_events
from clients.types import Delta, Model, Response


class Client:
    """`model` None: the first model the server lists. `api_key` None: $MIXTRAL_API_KEY, if set.
    `timeout`: seconds to connect and for each read. Retries: `max_retries`, or a whole RetryPolicy."""

    def __init__(
        self,
        base_url: str = _common.DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        model: str | None = None,
        timeout: float | httpx.Timeout | None = 600.0,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = _common.normalize_base_url(base_url)
        self.retry = _common.retry_policy(max_retries, retry)
        self._model = model
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_common.headers(api_key),
            timeout=_common.timeout(timeout),
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def models(self) -> list[Model]:
        response = self._send("GET", "/models", None, stream=False)
        return Model.parse_list(response.json())

    def model(self) -> str:
        """The model requests name: the one given, or the server's first (asked once)."""
        if self._model is None:
            self._model = self.models()[0].id
        return self._model

    def chat(self, messages: Sequence[_common.Message], **params: Any) -> Response:
        body = _common.chat_body(messages, self.model(), False, params)
        return Response.parse(self._send("POST", "/chat/completions", body, stream=False).json())

    def chat_stream(self, messages: Sequence[_common.Message], **params: Any) -> Iterator[Delta]:
        """Deltas as the server sends them; the last one carries `usage` (unless the caller sets
        `stream_options` otherwise). Closing the iterator closes the connection, which a server
        like ours takes as a cancel."""
        yield from self._stream("/chat/completions", _common.chat_body(messages, self.model(), True, params))

    def complete(self, prompt: str | list[int], **params: Any) -> Response:
        body = _common.completion_body(prompt, self.model(), False, params)
        return Response.parse(self._send("POST", "/completions", body, stream=False).json())

    def complete_stream(self, prompt: str | list[int], **params: Any) -> Iterator[Delta]:
        yield from self._stream("/completions", _common.completion_body(prompt, self.model(), True, params))

    def _stream(self, path: str, body: dict[str, Any]) -> Iterator[Delta]:
        response = self._send("POST", path, body, stream=True)
        try:
            lines = response.iter_lines()
            for event in iter_events(lines):
                yield from Delta.parse(event)
            for _ in lines:  # to the end of the body after [DONE], so the connection is reused
                pass
        except httpx.TimeoutException as exc:
            raise APIConnectionError(f"stream stalled: {exc}", timeout=True) from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(f"stream broken: {exc}") from exc
        finally:
            response.close()

    def _send(self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool) -> httpx.Response:
        """One request, retried per the policy. Only the start of a stream is retried: once text has
        been handed to the caller, repeating the request would repeat the text."""
        attempt = 0
        while True:
            failure: httpx.Headers | None = None
            try:
                response = self._http.send(self._http.build_request(method, path, json=body), stream=stream)
            except httpx.TransportError as exc:
                timed_out = isinstance(exc, httpx.TimeoutException)
                if not self.retry.should_retry(attempt, None):
                    raise APIConnectionError(f"{method} {path}: {exc!r}", timeout=timed_out) from exc
            else:
                if response.is_success:
                    return response
                response.read()
                response.close()
                if not self.retry.should_retry(attempt, response.status_code):
                    raise APIError.from_response(response)
                failure = response.headers
            time.sleep(self.retry.delay_s(attempt, failure))
            attempt += 1
