"""Per-key usage and quotas through HTTP on the real engine: the admin route, on this host's usage file
and on a shared Redis; a Redis that dies is the chosen failure mode, never a 500."""

from __future__ import annotations

from pathlib import Path

from server.engine.base import Engine
from tests.app_client import app_client
from tests.helpers import chat, metric_value
from tests.redis_server import RedisServer

KEYS = ["ops:sk-ops", "a:sk-a", "b:sk-b"]
OPS = {"Authorization": "Bearer sk-ops"}
A = {"Authorization": "Bearer sk-a"}
B = {"Authorization": "Bearer sk-b"}


async def test_usage_route_sums_a_keys_requests(engine: Engine, tmp_path: Path) -> None:
    async with app_client(
        engine, api_keys=KEYS, admin_keys=["ops"], usage_store_path=tmp_path / "usage.sqlite3"
    ) as http:
        used = []
        for i in range(2):
            resp = await http.post("/v1/chat/completions", json=chat(f"Hi {i}", max_tokens=2), headers=A)
            assert resp.status_code == 200, resp.text
            used.append(resp.json()["usage"])
        resp = await http.get("/v1/admin/usage", params={"key": "a", "days": 2}, headers=OPS)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        today = body["data"][-1]
        assert len(body["data"]) == 2 and body["data"][0]["requests"] == 0
        assert today["requests"] == 2
        assert today["prompt_tokens"] == sum(u["prompt_tokens"] for u in used)
        assert today["completion_tokens"] == sum(u["completion_tokens"] for u in used)
        assert body["total"]["total_tokens"] == sum(u["total_tokens"] for u in used)
        metrics = (await http.get("/metrics")).text
        assert metric_value(metrics, "mixtral_api_key_requests_total", 'key="a"') == 2

        assert (await http.get("/v1/admin/usage", params={"key": "a"})).status_code == 401
        denied = await http.get("/v1/admin/usage", params={"key": "a"}, headers=A)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
        unknown = await http.get("/v1/admin/usage", params={"key": "nobody"}, headers=OPS)
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "key"
        bad = await http.get("/v1/admin/usage", params={"key": "a", "days": 0}, headers=OPS)
        assert bad.status_code == 400


async def test_no_admin_keys_no_admin_route(engine: Engine) -> None:
    async with app_client(engine, api_keys=KEYS) as http:
        assert (await http.get("/v1/admin/usage", params={"key": "a"}, headers=OPS)).status_code == 404


async def test_shared_quota_then_redis_down_fails_open(engine: Engine, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    try:
        async with app_client(
            engine,
            api_keys=KEYS,
            admin_keys=["ops"],
            shared_state=redis.url,
            key_tokens_per_day=1,  # one request uses it up
        ) as http:
            resp = await http.post("/v1/chat/completions", json=chat("Hi", max_tokens=2), headers=A)
            assert resp.status_code == 200, resp.text
            over = await http.post("/v1/chat/completions", json=chat("Hi", max_tokens=2), headers=A)
            assert over.status_code == 429 and over.json()["error"]["code"] == "quota_exceeded"
            assert 1 <= int(over.headers["retry-after"]) <= 86400  # at UTC midnight
            usage = await http.get("/v1/admin/usage", params={"key": "a", "days": 1}, headers=OPS)
            assert usage.json()["data"][0]["requests"] == 1

            redis.kill()
            down = await http.post("/v1/chat/completions", json=chat("Hi", max_tokens=2), headers=A)
            assert down.status_code == 200, down.text  # fail-open: the replica's own admission only
            unavailable = await http.get("/v1/admin/usage", params={"key": "a"}, headers=OPS)
            assert unavailable.status_code == 503
            metrics = (await http.get("/metrics")).text
            assert metric_value(metrics, "mixtral_shared_state_up") == 0
            assert metric_value(metrics, "mixtral_shared_state_errors_total") >= 1
    finally:
        redis.kill()


async def test_two_replicas_sharing_redis_admit_a_keys_limit_once(
    engine: Engine, redis_server: RedisServer
) -> None:
    """Two apps (two replicas' HTTP sides, over the session's engine) with one Redis: a key limited to
    3 requests a minute gets 3 through both together, not 6; usage counts both."""
    settings = {"api_keys": KEYS, "admin_keys": ["ops"], "shared_state": redis_server.url}
    async with (
        app_client(engine, key_requests_per_minute=3, **settings) as one,
        app_client(engine, key_requests_per_minute=3, **settings) as two,
    ):
        statuses = []
        for i in range(6):
            http = (one, two)[i % 2]
            resp = await http.post("/v1/chat/completions", json=chat(f"Hi {i}", max_tokens=1), headers=B)
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                assert resp.json()["error"]["code"] == "requests_per_minute_exceeded"
        assert sorted(statuses) == [200, 200, 200, 429, 429, 429]
        usage = await two.get("/v1/admin/usage", params={"key": "b", "days": 1}, headers=OPS)
        assert usage.json()["data"][0]["requests"] == 3
