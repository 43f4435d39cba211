"""/health, /version, /v1/models, /metrics and continuous batching on the real engine."""

from __future__ import annotations

import asyncio

import httpx

from server.engine.base import Engine
from server.engine.warmup import prefill_sizes, warm_up
from tests.app_client import app_client
from tests.helpers import chat, metric_value, stream_events


async def test_health_is_200_while_engine_alive(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200


async def test_version_names_server_and_engine(client: httpx.AsyncClient) -> None:
    body = (await client.get("/version")).json()
    assert body["version"]
    assert body["engine"].startswith("vllm 0.")


async def test_models_lists_the_served_model(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    [model] = body["data"]
    assert model["id"] == "tiny-mixtral"
    assert model["object"] == "model"
    assert model["max_model_len"] == 1024
    assert (await client.get("/v1/models/tiny-mixtral")).json()["id"] == "tiny-mixtral"


async def test_metrics_count_requests_and_tokens(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    resp = await client.post("/v1/chat/completions", json=chat("Hello there", max_tokens=5, temperature=0))
    usage = resp.json()["usage"]
    await client.post("/v1/chat/completions", json=chat("x", model="nope"))
    after = (await client.get("/metrics")).text

    def delta(name: str, labels: str = "") -> float:
        return metric_value(after, name, labels) - metric_value(before, name, labels)

    ok = 'route="/v1/chat/completions",status="200"'
    assert delta("mixtral_http_requests_total", ok) == 1
    assert delta("mixtral_http_requests_total", 'route="/v1/chat/completions",status="404"') == 1
    assert delta("mixtral_prompt_tokens_total") == usage["prompt_tokens"]
    assert delta("mixtral_generation_tokens_total") == 5
    assert delta("mixtral_time_to_first_token_seconds_count") == 1
    assert delta("mixtral_request_success_total", 'finish_reason="length"') == 1
    assert "mixtral_num_requests_running" in after
    assert "mixtral_kv_cache_usage_perc" in after


async def test_eight_concurrent_streams_run_in_one_batch(client: httpx.AsyncClient, engine: Engine) -> None:
    """Continuous batching: all eight are in the engine's running batch at the same time."""
    seen_running: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            seen_running.append(engine.stats().running)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    bodies = [chat(f"Stream number {i}", max_tokens=64, ignore_eos=True, stream=True) for i in range(8)]
    results = await asyncio.gather(*(stream_events(client, "/v1/chat/completions", b) for b in bodies))
    done.set()
    await watcher
    for events in results:
        finals = [e for e in events if e["choices"] and e["choices"][0].get("finish_reason")]
        assert finals[-1]["choices"][0]["finish_reason"] == "length"
        assert sum(len(e["choices"][0]["delta"].get("content") or "") > 0 for e in events) > 0
    assert max(seen_running) == 8
    metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, "mixtral_num_requests_running") == engine.stats().running


async def test_warm_up_runs_its_prompts_to_the_end(engine: Engine) -> None:
    card = engine.model_card
    sizes = prefill_sizes(card.max_model_len, card.max_num_batched_tokens)
    assert sizes == [520, 523, 524, card.max_model_len - 1]
    assert await warm_up(engine) > 0
    for _ in range(200):  # the engine's next report shows the batch empty again
        if engine.stats().running == 0:
            break
        await asyncio.sleep(0.01)
    assert engine.stats().running == 0
    await engine.check_health()


async def test_in_the_shutdown_delay_ready_is_503_and_chat_still_answers(engine: Engine) -> None:
    """The balancer's probe fails at once; its requests are still served until the drain starts."""
    async with app_client(engine, shutdown_delay=60) as http:
        assert (await http.get("/ready")).status_code == 200
        http.app_state.lifecycle.begin_drain()  # type: ignore[attr-defined]  # the first SIGTERM
        ready = await http.get("/ready")
        answered = await http.post("/v1/chat/completions", json=chat("Still here", max_tokens=2))
        http.app_state.lifecycle.begin_drain()  # type: ignore[attr-defined]  # a second: drain now
        refused = await http.post("/v1/chat/completions", json=chat("Too late", max_tokens=2))
    assert (ready.status_code, ready.json()["error"]["code"]) == (503, "shutting_down")
    assert answered.status_code == 200 and answered.json()["usage"]["completion_tokens"] == 2
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "shutting_down")
