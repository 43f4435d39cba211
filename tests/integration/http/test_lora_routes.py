"""LoRA routing and the admin endpoints on the real engine (started without LoRA: the CPU backend
cannot run LoRA on Mixtral), so every answer here is a refusal a client must be able to read."""

from __future__ import annotations

from pathlib import Path

from server.engine.base import Engine
from tests.app_client import app_client


async def test_admin_routes_exist_only_with_allow_runtime_lora(engine: Engine) -> None:
    async with app_client(engine) as client:
        resp = await client.post("/v1/load_lora_adapter", json={"lora_name": "a", "lora_path": "/x"})
    assert resp.status_code == 404


async def test_admin_routes_need_the_api_key(engine: Engine) -> None:
    async with app_client(engine, allow_runtime_lora=True, api_keys="secret") as client:
        resp = await client.post("/v1/unload_lora_adapter", json={"lora_name": "a"})
    assert resp.status_code == 401


async def test_load_errors_name_the_problem(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    async with app_client(engine, allow_runtime_lora=True) as client:
        load = "/v1/load_lora_adapter"
        bad_path = await client.post(load, json={"lora_name": "a", "lora_path": "/nowhere"})
        taken = await client.post(load, json={"lora_name": "tiny-mixtral", "lora_path": str(tmp_path)})
        disabled = await client.post(load, json={"lora_name": "a", "lora_path": str(tmp_path)})
        unknown = await client.post("/v1/unload_lora_adapter", json={"lora_name": "a"})
    assert (bad_path.status_code, bad_path.json()["error"]["code"]) == (400, "invalid_lora_path")
    assert (taken.status_code, taken.json()["error"]["code"]) == (400, "lora_name_taken")
    assert (disabled.status_code, disabled.json()["error"]["code"]) == (400, "lora_disabled")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "lora_not_found")


async def test_unknown_model_is_404_naming_what_is_served(engine: Engine) -> None:
    async with app_client(engine) as client:
        resp = await client.post(
            "/v1/completions", json={"model": "zh-lora", "prompt": "hi", "max_tokens": 1}
        )
        models = await client.get("/v1/models")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found"
    assert "'tiny-mixtral'" in resp.json()["error"]["message"]
    assert [m["id"] for m in models.json()["data"]] == ["tiny-mixtral"]
