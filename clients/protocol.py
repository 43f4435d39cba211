"""The client's side of the OpenAI HTTP API, with no I/O: what each call sends, when a failed
attempt is worth repeating, which exception an answer becomes, and how a stream's bytes turn into
deltas.

Client and AsyncClient are shells around this module that only send, read and sleep (httpx.Client
against httpx.AsyncClient, time.sleep against asyncio.sleep); every decision is taken here once, so
the two cannot drift apart.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from clients.errors import APIConnectionError, APIError
from clients.retry import RetryPolicy
from clients.sse import EventStream, LineDecoder
from clients.types import Delta

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
API_KEY_ENV = "MIXTRAL_API_KEY"

Message = dict[str, Any]


def normalize_base_url(url: str) -> str:
    """'http://host:8000' and 'http://host:8000/v1' both mean the OpenAI API root; a URL with any
    other path (a proxy's '/openai/v1') is taken as given."""
    url = url.rstrip("/")
    path = httpx.URL(url).path.rstrip("/")
    return url + "/v1" if path == "" else url


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def _timeout(seconds: float | httpx.Timeout | None) -> httpx.Timeout:
    """A float bounds connecting and each read (so a stream may run long, but not stall); the
    connect phase gets at most 10 s."""
    if isinstance(seconds, httpx.Timeout):
        return seconds
    if seconds is None:
        return httpx.Timeout(None)
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def http_options(base_url: str, api_key: str | None, seconds: float | httpx.Timeout | None) -> dict[str, Any]:
    """What both shells give their httpx client, so that every request they build carries it."""
    return {"base_url": base_url, "headers": _headers(api_key), "timeout": _timeout(seconds)}


def retry_policy(max_retries: int, retry: RetryPolicy | None) -> RetryPolicy:
    return retry if retry is not None else RetryPolicy(max_retries=max_retries)


@dataclass(frozen=True)
class Call:
    """One API call: a method, a path under the API root and a JSON body, sent as often as the
    retry policy allows."""

    method: str
    path: str
    body: dict[str, Any] | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """A fresh request per attempt, built by the httpx client so that its base URL, headers and
        timeout apply (building sends nothing, in either client)."""
        return http.build_request(self.method, self.path, json=self.body)


MODELS = Call("GET", "/models")


def chat_call(messages: Sequence[Message], model: str | None, stream: bool, params: dict[str, Any]) -> Call:
    return Call("POST", "/chat/completions", _body({"messages": list(messages), **params}, model, stream))


def completion_call(prompt: str | list[int], model: str | None, stream: bool, params: dict[str, Any]) -> Call:
    return Call("POST", "/completions", _body({"prompt": prompt, **params}, model, stream))


def _body(body: dict[str, Any], model: str | None, stream: bool) -> dict[str, Any]:
    if model is not None:
        body["model"] = model
    if stream:
        body["stream"] = True
        # The usage chunk gives the exact token count, for tokens/s and for the load tester.
        body.setdefault("stream_options", {"include_usage": True})
    return body


class Attempts:
    """The retry decisions for one call. Each failed attempt is reported here; the answer is how
    many seconds to wait before the next one, or the exception to raise once the policy says stop.

    Only the start of a stream passes through here: once text has been handed to the caller,
    repeating the request would repeat the text."""

    def __init__(self, policy: RetryPolicy, call: Call) -> None:
        self._policy = policy
        self._call = call
        self._retries = 0

    def after_no_answer(self, exc: httpx.TransportError) -> float:
        """The connection failed or timed out before an answer came."""
        if not self._policy.should_retry(self._retries, None):
            timed_out = isinstance(exc, httpx.TimeoutException)
            what = f"{self._call.method} {self._call.path}: {exc!r}"
            raise APIConnectionError(what, timeout=timed_out) from exc
        return self._wait(None)

    def after_error_answer(self, response: httpx.Response) -> float:
        """A 4xx/5xx answer, whose body the shell has read (for the error's fields)."""
        if not self._policy.should_retry(self._retries, response.status_code):
            raise APIError.from_response(response)
        return self._wait(response.headers)

    def _wait(self, answer: httpx.Headers | None) -> float:
        seconds = self._policy.delay_s(self._retries, answer)
        self._retries += 1
        return seconds


class DeltaStream:
    """A stream's body in, as the byte chunks the transport hands over (cut anywhere, even inside
    a character), deltas out. The shells read bytes, not httpx's text lines, so that both split
    lines the SSE way (clients.sse). Lines after [DONE] give nothing, so a shell feeds the body to
    its end and the connection is reused."""

    def __init__(self) -> None:
        self._lines = LineDecoder()
        self._events = EventStream()

    def feed(self, chunk: bytes) -> Iterator[Delta]:
        """Lazily: the deltas of a chunk's first events reach the caller even when a later event
        in the same chunk is an error, which is raised only then."""
        for line in self._lines.feed(chunk):
            event = self._events.feed(line)
            if event is not None:
                yield from Delta.parse(event)


@contextlib.contextmanager
def stream_errors() -> Iterator[None]:
    """A stream that stalls or breaks once it has begun is a connection error, never retried."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APIConnectionError(f"stream stalled: {exc}", timeout=True) from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"stream broken: {exc}") from exc
