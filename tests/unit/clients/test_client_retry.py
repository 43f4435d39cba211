"""The Python client's retries: which answers it repeats, how long it waits (the server's Retry-After
first), when it gives up, and the OpenAI error fields it raises. An in-memory HTTP transport plays
the server, since the real one cannot be made to answer 429 or 503 on demand."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time

import httpx
import pytest

from clients import APIConnectionError, APIError, AsyncClient, Client, RetryPolicy
from clients.protocol import normalize_base_url
from clients.retry import retry_after_s
from clients.sse import iter_events

OK = {
    "id": "x",
    "model": "m",
    "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
}
ERROR = {"error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "busy"}}


def scripted(answers: list[httpx.Response]) -> tuple[httpx.MockTransport, list[float]]:
    """A transport that gives `answers` in order and notes when each request came."""
    times: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return answers[len(times) - 1]

    return httpx.MockTransport(handle), times


def test_retry_after_is_read_as_seconds_milliseconds_or_a_date() -> None:
    assert retry_after_s(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert retry_after_s(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    date = email.utils.formatdate(1_000_000 + 10, usegmt=True)
    assert retry_after_s(httpx.Headers({"Retry-After": date}), now=1_000_000) == pytest.approx(10.0)
    assert retry_after_s(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after_s(httpx.Headers()) is None


def test_only_transient_answers_are_retried_and_backoff_is_bounded() -> None:
    policy = RetryPolicy(max_retries=2, base_delay_s=0.5, max_delay_s=2.0)
    assert policy.should_retry(0, 429) and policy.should_retry(1, 503) and policy.should_retry(0, None)
    assert not policy.should_retry(0, 400) and not policy.should_retry(0, 401)
    assert not policy.should_retry(0, 408)  # the request's own deadline: it would pass again
    assert not policy.should_retry(2, 503)  # out of retries
    assert all(0 <= policy.delay_s(attempt) <= 2.0 for attempt in range(10) for _ in range(20))
    assert policy.delay_s(5, httpx.Headers({"Retry-After": "7"})) == 7.0  # the server's word wins


def test_client_waits_as_long_as_retry_after_says_then_succeeds() -> None:
    transport, times = scripted(
        [httpx.Response(429, json=ERROR, headers={"Retry-After": "0.3"}), httpx.Response(200, json=OK)]
    )
    with Client("http://server", model="m", transport=transport) as client:
        assert client.chat([{"role": "user", "content": "x"}]).text == "hi"
    assert len(times) == 2 and times[1] - times[0] >= 0.3


def test_client_gives_up_after_max_retries_with_the_openai_error_fields() -> None:
    busy = httpx.Response(503, json=ERROR, headers={"Retry-After": "0"})
    transport, times = scripted([busy, busy, busy])
    with (
        Client("http://server", model="m", max_retries=2, transport=transport) as client,
        pytest.raises(APIError) as caught,
    ):
        client.chat([{"role": "user", "content": "x"}])
    assert len(times) == 3
    assert (caught.value.status, caught.value.type, caught.value.code) == (503, "rate_limit_error", "busy")
    assert caught.value.message == "slow down"


def test_client_does_not_repeat_a_bad_request() -> None:
    transport, times = scripted([httpx.Response(400, json=ERROR)])
    with Client("http://server", model="m", transport=transport) as client, pytest.raises(APIError):
        client.complete("x")
    assert len(times) == 1


def test_async_client_retries_a_stream_before_it_starts() -> None:
    body = 'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n'
    transport, times = scripted(
        [
            httpx.Response(429, json=ERROR, headers={"retry-after-ms": "100"}),
            httpx.Response(200, text=body, headers={"content-type": "text/event-stream"}),
        ]
    )

    async def run() -> list[str]:
        mock = httpx.MockTransport(transport.handler)  # type: ignore[attr-defined]
        async with AsyncClient("http://server", model="m", transport=mock) as client:
            return [d.text async for d in client.chat_stream([{"role": "user", "content": "x"}])]

    assert asyncio.run(run()) == ["a"]
    assert len(times) == 2 and times[1] - times[0] >= 0.1


def test_unreachable_server_is_a_connection_error_after_retries() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    policy = RetryPolicy(max_retries=1, base_delay_s=0.01)
    transport = httpx.MockTransport(refuse)
    with (
        Client("http://server", model="m", retry=policy, transport=transport) as client,
        pytest.raises(APIConnectionError) as caught,
    ):
        client.models()
    assert not caught.value.timeout


def test_an_error_event_mid_stream_is_raised() -> None:
    body = f'data: {{"choices":[{{"index":0,"delta":{{"content":"a"}}}}]}}\n\ndata: {json.dumps(ERROR)}\n\n'
    events = iter_events([body.encode()])
    assert next(events)["choices"][0]["delta"]["content"] == "a"
    with pytest.raises(APIError) as caught:
        next(events)
    assert caught.value.status is None and caught.value.code == "busy"


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("https://proxy/openai/v1", "https://proxy/openai/v1"),
    ],
)
def test_base_url_with_or_without_v1(given: str, root: str) -> None:
    assert normalize_base_url(given) == root
