"""What the sync and async clients share: base URL, headers, timeouts and request bodies."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from clients.retry import RetryPolicy

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
API_KEY_ENV = "MIXTRAL_API_KEY"

Message = dict[str, Any]


def normalize_base_url(url: str) -> str:
    """'http://host:8000' and 'http://host:8000/v1' both mean the OpenAI API root; a URL with any
    other path (a proxy's '/openai/v1') is taken as given."""
    url = url.rstrip("/")
    path = httpx.URL(url).path.rstrip("/")
    return url + "/v1" if path == "" else url


def headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def timeout(seconds: float | httpx.Timeout | None) -> httpx.Timeout:
    """A float bounds connecting and each read (so a stream may run long, but not stall); the
    connect phase gets at most 10 s."""
    if isinstance(seconds, httpx.Timeout):
        return seconds
    if seconds is None:
        return httpx.Timeout(None)
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def retry_policy(max_retries: int, retry: RetryPolicy | None) -> RetryPolicy:
    return retry if retry is not None else RetryPolicy(max_retries=max_retries)


def chat_body(
    messages: Sequence[Message], model: str | None, stream: bool, params: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": list(messages), **params}
    return _finish(body, model, stream)


def completion_body(
    prompt: str | list[int], model: str | None, stream: bool, params: dict[str, Any]
) -> dict[str, Any]:
    return _finish({"prompt": prompt, **params}, model, stream)


def _finish(body: dict[str, Any], model: str | None, stream: bool) -> dict[str, Any]:
    if model is not None:
        body["model"] = model
    if stream:
        body["stream"] = True
        # The usage chunk gives the exact token count, for tokens/s and for the load tester.
        body.setdefault("stream_options", {"include_usage": True})
    return body
