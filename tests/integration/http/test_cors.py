"""CORS on the real app: off by default; when origins are configured, preflights and answers carry
the allow headers for those origins only, and X-Request-Id is exposed to the page."""

from __future__ import annotations

import httpx

from server.engine.base import Engine
from tests.app_client import app_client

CHAT = "/v1/chat/completions"


PREFLIGHT = {
    "Origin": "https://chat.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type,x-request-id",
}


async def test_cors_preflight_is_answered_when_origins_are_configured(engine: Engine) -> None:
    async with app_client(engine, cors_allow_origins=["https://chat.example"]) as http:
        allowed = await http.options(CHAT, headers=PREFLIGHT)
        other = await http.options(CHAT, headers=PREFLIGHT | {"Origin": "https://evil.example"})
        simple = await http.get("/v1/models", headers={"Origin": "https://chat.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "x-request-id" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert simple.headers["access-control-allow-origin"] == "https://chat.example"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    preflight = await client.options(CHAT, headers=PREFLIGHT)
    simple = await client.get("/v1/models", headers={"Origin": "https://chat.example"})
    for response in (preflight, simple):
        assert not [h for h in response.headers if h.startswith("access-control-")]
