"""API keys on the real engine: who gets in, who gets a 401, and that no secret reaches a log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.engine.base import Engine
from tests.app_client import app_client
from tests.helpers import chat, metric_value

ALICE = "sk-alice-0123456789"
BOB = "sk-bob-9876543210"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_openai_401(resp_json: dict[str, object]) -> None:
    error = resp_json["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"


async def test_missing_or_wrong_key_is_a_401_and_each_configured_key_gets_in(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with app_client(engine, api_keys=[f"alice:{ALICE}", BOB]) as http:
        body = chat("Hi", max_tokens=2)
        for headers in ({}, bearer("sk-wrong"), {"Authorization": ALICE}, bearer(ALICE + "x")):
            resp = await http.post("/v1/chat/completions", json=body, headers=headers)
            assert resp.status_code == 401, headers
            assert_openai_401(resp.json())
        for key in (ALICE, BOB):
            resp = await http.post("/v1/chat/completions", json=body, headers=bearer(key))
            assert resp.status_code == 200, resp.text
        assert (await http.get("/v1/models")).status_code == 401
        assert (await http.get("/v1/models", headers=bearer(BOB))).status_code == 200
        completion = {"prompt": "Hi", "max_tokens": 2}
        assert (await http.post("/v1/completions", json=completion)).status_code == 401
        # Operations endpoints and the page stay open by default.
        assert (await http.get("/health")).status_code == 200
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert metric_value(metrics.text, "mixtral_rejected_requests_total", 'reason="auth"') == 6
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert ALICE not in logged and BOB not in logged


async def test_protect_operations_closes_health_and_metrics(engine: Engine) -> None:
    async with app_client(engine, api_keys=[ALICE], protect_operations=True) as http:
        for path in ("/health", "/metrics"):
            resp = await http.get(path)
            assert resp.status_code == 401
            assert_openai_401(resp.json())
            assert (await http.get(path, headers=bearer(ALICE))).status_code == 200


async def test_keys_from_a_file_with_names_and_comments(engine: Engine, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# team keys\nalice:{ALICE}\n\n{BOB}\n")
    async with app_client(engine, api_keys_file=keys) as http:
        assert (await http.get("/v1/models", headers=bearer(ALICE))).status_code == 200
        assert (await http.get("/v1/models", headers=bearer(BOB))).status_code == 200
        assert (await http.get("/v1/models", headers=bearer("alice"))).status_code == 401
