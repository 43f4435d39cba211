"""Known traffic on the real engine moves every metric by exactly what it should.

Four requests: a chat answer (5 tokens), a streamed completion with two choices (4 tokens each), a
chat for another model (404) and a completion with a bad temperature (400). Counters must move by
exact amounts and histograms by exact sample counts; the engine's own histograms (inter-token
latency, queue time) count what the engine did: one gap per token after each choice's first, one
queue wait per engine request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.helpers import chat, metric_value, stream_events

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
MODEL = "tiny-mixtral"
CHAT_TOKENS, COMPLETION_TOKENS, N = 5, 4, 2
ENGINE_REQUESTS = 1 + N
TOKEN_GAPS = (CHAT_TOKENS - 1) + N * (COMPLETION_TOKENS - 1)


def requests_labels(endpoint: str, status: int, finish_reason: str) -> str:
    """In the exposition's order: label names sorted."""
    return f'endpoint="{endpoint}",finish_reason="{finish_reason}",model="{MODEL}",status="{status}"'


async def _send_known_traffic(client: httpx.AsyncClient) -> int:
    """Returns the prompt tokens of the two answered requests."""
    answer = await client.post(
        CHAT, json=chat("Count the metrics", max_tokens=CHAT_TOKENS, ignore_eos=True, temperature=0)
    )
    assert answer.status_code == 200, answer.text
    body = {
        "prompt": "Once upon a time",
        "max_tokens": COMPLETION_TOKENS,
        "n": N,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = await stream_events(client, COMPLETIONS, body)
    assert (await client.post(CHAT, json=chat("x", model="nope"))).status_code == 404
    assert (await client.post(COMPLETIONS, json={"prompt": "x", "temperature": 5})).status_code == 400
    prompt_tokens: int = answer.json()["usage"]["prompt_tokens"] + events[-1]["usage"]["prompt_tokens"]
    return prompt_tokens


async def _scrape_when(client: httpx.AsyncClient, settled: Callable[[str], bool]) -> tuple[str, int]:
    """The engine reports after each step; give its last report a moment to land. Returns the last
    scrape and how many were made."""
    scrapes = 0
    while True:
        text = (await client.get("/metrics")).text
        scrapes += 1
        if settled(text) or scrapes == 100:
            return text, scrapes
        await asyncio.sleep(0.05)


async def test_each_metric_moves_by_the_traffic_sent(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    prompt_tokens = await _send_known_traffic(client)

    def delta_in(text: str, name: str, labels: str = "") -> float:
        return metric_value(text, name, labels) - metric_value(before, name, labels)

    def settled(text: str) -> bool:
        return (
            delta_in(text, "mixtral_inter_token_latency_seconds_count") >= TOKEN_GAPS
            and metric_value(text, "mixtral_num_requests_running") == 0
        )

    after, scrapes = await _scrape_when(client, settled)

    def delta(name: str, labels: str = "") -> float:
        return delta_in(after, name, labels)

    # Requests by endpoint, model, status and finish reason; HTTP responses by route and status.
    assert delta("mixtral_requests_total", requests_labels(CHAT, 200, "length")) == 1
    assert delta("mixtral_requests_total", requests_labels(COMPLETIONS, 200, "length")) == 1
    assert delta("mixtral_requests_total", requests_labels(CHAT, 404, "none")) == 1
    assert delta("mixtral_requests_total", requests_labels(COMPLETIONS, 400, "none")) == 1
    for route, status in ((CHAT, 200), (CHAT, 404), (COMPLETIONS, 200), (COMPLETIONS, 400)):
        assert delta("mixtral_http_requests_total", f'route="{route}",status="{status}"') == 1
    # A scrape is counted once its response has gone: `before` and all but the last of `scrapes`.
    assert delta("mixtral_api_server_requests_total", 'api_server="0"') == 4 + 1 + (scrapes - 1)
    # Per choice, as vLLM counts finished engine requests.
    assert delta("mixtral_request_success_total", 'finish_reason="length"') == ENGINE_REQUESTS
    assert delta("mixtral_request_success_total", 'finish_reason="stop"') == 0

    generated = CHAT_TOKENS + N * COMPLETION_TOKENS
    assert delta("mixtral_prompt_tokens_total") == prompt_tokens
    assert delta("mixtral_generation_tokens_total") == generated

    # Per answered API request: two samples each.
    for histogram in (
        "mixtral_time_to_first_token_seconds",
        "mixtral_e2e_request_latency_seconds",
        "mixtral_request_prompt_tokens",
        "mixtral_request_generation_tokens",
    ):
        assert delta(f"{histogram}_count") == 2, histogram
    assert delta("mixtral_request_prompt_tokens_sum") == prompt_tokens
    assert delta("mixtral_request_generation_tokens_sum") == generated
    ttft_sum = delta("mixtral_time_to_first_token_seconds_sum")
    assert delta("mixtral_e2e_request_latency_seconds_sum") >= ttft_sum

    # From the engine: one gap per token after each choice's first, one queue wait per engine request.
    assert delta("mixtral_inter_token_latency_seconds_count") == TOKEN_GAPS
    assert delta("mixtral_inter_token_latency_seconds_sum") > 0
    assert delta("mixtral_request_queue_time_seconds_count") == ENGINE_REQUESTS
    assert delta("mixtral_request_queue_time_seconds_sum") >= 0

    # The scheduler's gauges once the batch has drained.
    assert metric_value(after, "mixtral_num_requests_running") == 0
    assert metric_value(after, "mixtral_num_requests_waiting") == 0
    assert 0 <= metric_value(after, "mixtral_kv_cache_usage_perc") <= 1


async def test_every_collector_is_exported_with_help_and_type(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for name, kind in (
        ("mixtral_requests_total", "counter"),
        ("mixtral_rejected_requests_total", "counter"),
        ("mixtral_client_disconnects_total", "counter"),
        ("mixtral_api_key_requests_in_flight", "gauge"),
        ("mixtral_inter_token_latency_seconds", "histogram"),
        ("mixtral_request_queue_time_seconds", "histogram"),
        ("mixtral_request_prompt_tokens", "histogram"),
    ):
        assert f"# TYPE {name} {kind}" in text, name
