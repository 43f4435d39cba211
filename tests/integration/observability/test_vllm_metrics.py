"""vLLM's own families on the real engine, read the way the tools that know vLLM read them: the
production-stack router and KEDA (vllm:num_requests_running / _waiting, by sample name), vLLM's
Grafana dashboard (token counters, latency histograms by model_name, request_success by
finished_reason), each moved by exactly the traffic sent."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx

from tests.helpers import chat, metric_value, stream_events

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
ENGINE = 'engine="0",model_name="tiny-mixtral"'
CHAT_TOKENS, COMPLETION_TOKENS, N = 5, 4, 2
ENGINE_REQUESTS = 1 + N
TOKEN_GAPS = (CHAT_TOKENS - 1) + N * (COMPLETION_TOKENS - 1)


async def _send(client: httpx.AsyncClient) -> int:
    """A chat answer and a streamed completion with two choices; returns the engine's prompt tokens
    (each choice is one engine request with the whole prompt)."""
    answer = await client.post(
        CHAT, json=chat("Count vLLM's metrics", max_tokens=CHAT_TOKENS, ignore_eos=True, temperature=0)
    )
    assert answer.status_code == 200, answer.text
    body = {
        "prompt": "Once upon a time in a metric",
        "max_tokens": COMPLETION_TOKENS,
        "n": N,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = await stream_events(client, COMPLETIONS, body)
    chat_prompt: int = answer.json()["usage"]["prompt_tokens"]
    completion_prompt: int = events[-1]["usage"]["prompt_tokens"]
    return chat_prompt + N * completion_prompt


async def _scrape_when(client: httpx.AsyncClient, settled: Callable[[str], bool]) -> str:
    for _ in range(100):
        text = (await client.get("/metrics")).text
        if settled(text):
            return text
        await asyncio.sleep(0.05)
    return text


def _edges(text: str, family: str) -> list[float]:
    pattern = rf'^{re.escape(family)}_bucket{{engine="0",le="([0-9.e+]+)",model_name="tiny-mixtral"}}'
    return [float(edge) for edge in re.findall(pattern, text, flags=re.MULTILINE)]


async def test_vllm_families_move_by_the_traffic_sent(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    prompt_tokens = await _send(client)

    def delta_in(text: str, name: str, labels: str = ENGINE) -> float:
        return metric_value(text, name, labels) - metric_value(before, name, labels)

    finished = 'engine="0",finished_reason="length",model_name="tiny-mixtral"'  # sorted, as exposed

    def settled(text: str) -> bool:
        return (
            delta_in(text, "vllm:request_success_total", finished) >= ENGINE_REQUESTS
            and metric_value(text, "vllm:num_requests_running", ENGINE) == 0
        )

    after = await _scrape_when(client, settled)

    def delta(name: str, labels: str = ENGINE) -> float:
        return delta_in(after, name, labels)

    # What the router and autoscalers read: present with vLLM's labels, 0 once drained.
    assert f"vllm:num_requests_running{{{ENGINE}}} 0.0" in after
    assert f"vllm:num_requests_waiting{{{ENGINE}}} 0.0" in after
    assert 0 <= metric_value(after, "vllm:kv_cache_usage_perc", ENGINE) <= 1
    # Counters as vLLM counts: per engine request (choice), every token.
    assert delta("vllm:request_success_total", finished) == ENGINE_REQUESTS
    assert delta("vllm:request_success_total", finished.replace("length", "stop")) == 0
    assert delta("vllm:generation_tokens_total") == CHAT_TOKENS + N * COMPLETION_TOKENS
    assert delta("vllm:prompt_tokens_total") == prompt_tokens
    assert delta("vllm:prefix_cache_queries_total") >= prompt_tokens
    assert delta("vllm:num_preemptions_total") == 0
    # Histograms: one sample per engine request, one gap per token after each choice's first.
    for family in (
        "vllm:e2e_request_latency_seconds",
        "vllm:time_to_first_token_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds",
        "vllm:request_time_per_output_token_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_generation_tokens",
    ):
        assert delta(f"{family}_count") == ENGINE_REQUESTS, family
    assert delta("vllm:inter_token_latency_seconds_count") == TOKEN_GAPS
    assert delta("vllm:request_generation_tokens_sum") == CHAT_TOKENS + N * COMPLETION_TOKENS
    assert delta("vllm:iteration_tokens_total_count") > 0
    # vLLM's bucket edges, not ours: latencies to 7680 s, first token from 1 ms.
    assert _edges(after, "vllm:e2e_request_latency_seconds")[-1] == 7680.0
    assert _edges(after, "vllm:time_to_first_token_seconds")[0] == 0.001
    assert "vllm:cache_config_info{" in after
    # Ours stay next to them.
    assert "mixtral_num_requests_waiting " in after


async def test_name_filter_serves_only_the_named_samples(client: httpx.AsyncClient) -> None:
    """As KEDA's Prometheus-less scalers and vLLM's clients ask: /metrics?name[]=..."""
    params = [("name[]", "vllm:num_requests_waiting"), ("name[]", "process_resident_memory_bytes")]
    answer = await client.get("/metrics", params=params)
    assert answer.status_code == 200
    samples = [line for line in answer.text.splitlines() if not line.startswith("#")]
    assert sorted(line.split(" ")[0] for line in samples) == [
        "process_resident_memory_bytes",
        f"vllm:num_requests_waiting{{{ENGINE}}}",
    ]
