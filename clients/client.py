"""The synchronous client: chat and completions, whole or streamed as deltas, with retries.

    from clients import Client

    with Client("http://127.0.0.1:8000") as client:
        print(client.chat([{"role": "user", "content": "Hi"}], max_tokens=16).text)
        for delta in client.chat_stream([{"role": "user", "content": "Hi"}], max_tokens=16):
            print(delta.text, end="", flush=True)

Works against any OpenAI-compatible server. Sampling parameters (temperature, seed, ignore_eos...)
are passed through as keyword arguments, unchecked: the server is the judge of what it accepts.
What is sent and what the answers mean is decided in clients.protocol; this class only does the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from clients import protocol
from clients.protocol import Attempts, Call, DeltaStream, Message
from clients.retry import RetryPolicy
from clients.types import Delta, Model, Response


class Client:
    """`model` None: the first model the server lists. `api_key` None: $MIXTRAL_API_KEY, if set.
    `timeout`: seconds to connect and for each read. Retries: `max_retries`, or a whole RetryPolicy."""

    def __init__(
        self,
        base_url: str = protocol.DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        model: str | None = None,
        timeout: float | httpx.Timeout | None = 600.0,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = protocol.normalize_base_url(base_url)
        self.retry = protocol.retry_policy(max_retries, retry)
        self._model = model
        self._http = httpx.Client(
            **protocol.http_options(self.base_url, api_key, timeout), transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def models(self) -> list[Model]:
        return Model.parse_list(self._send(protocol.MODELS, stream=False).json())

    def model(self) -> str:
        """The model requests name: the one given, or the server's first (asked once)."""
        if self._model is None:
            self._model = self.models()[0].id
        return self._model

    def chat(self, messages: Sequence[Message], **params: Any) -> Response:
        call = protocol.chat_call(messages, self.model(), False, params)
        return Response.parse(self._send(call, stream=False).json())

    def chat_stream(self, messages: Sequence[Message], **params: Any) -> Iterator[Delta]:
        """Deltas as the server sends them; the last one carries `usage` (unless the caller sets
        `stream_options` otherwise). Closing the iterator closes the connection, which a server
        like ours takes as a cancel."""
        yield from self._stream(protocol.chat_call(messages, self.model(), True, params))

    def complete(self, prompt: str | list[int], **params: Any) -> Response:
        call = protocol.completion_call(prompt, self.model(), False, params)
        return Response.parse(self._send(call, stream=False).json())

    def complete_stream(self, prompt: str | list[int], **params: Any) -> Iterator[Delta]:
        yield from self._stream(protocol.completion_call(prompt, self.model(), True, params))

    def _stream(self, call: Call) -> Iterator[Delta]:
        response = self._send(call, stream=True)
        deltas = DeltaStream()
        try:
            with protocol.stream_errors():
                for chunk in response.iter_bytes():
                    yield from deltas.feed(chunk)
        finally:
            response.close()

    def _send(self, call: Call, *, stream: bool) -> httpx.Response:
        attempts = Attempts(self.retry, call)
        while True:
            try:
                response = self._http.send(call.request(self._http), stream=stream)
            except httpx.TransportError as exc:
                wait_s = attempts.after_no_answer(exc)
            else:
                if response.is_success:
                    return response
                response.read()
                response.close()
                wait_s = attempts.after_error_answer(response)
            time.sleep(wait_s)
