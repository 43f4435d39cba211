"""The operator's caps on one request, each a clear 400 (413 for the body) on the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

from server.engine.base import Engine
from tests.app_client import app_client
from tests.helpers import chat


def assert_error(resp_status: int, body: dict[str, object], status: int, param: str | None) -> None:
    assert resp_status == status
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param


async def test_each_cap_names_its_field(engine: Engine) -> None:
    caps = {"max_n": 2, "max_messages": 3, "max_prompt_tokens": 40, "max_tokens_limit": 8}
    async with app_client(engine, **caps) as http:
        resp = await http.post("/v1/chat/completions", json=chat("Hi", n=3))
        assert_error(resp.status_code, resp.json(), 400, "n")
        many = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 2}
        resp = await http.post("/v1/chat/completions", json=many)
        assert_error(resp.status_code, resp.json(), 400, "messages")
        resp = await http.post("/v1/chat/completions", json=chat("word " * 60))
        assert_error(resp.status_code, resp.json(), 400, "messages")
        resp = await http.post("/v1/completions", json={"prompt": "word " * 60})
        assert_error(resp.status_code, resp.json(), 400, "prompt")
        resp = await http.post("/v1/chat/completions", json=chat("Hi", max_tokens=9))
        assert_error(resp.status_code, resp.json(), 400, "max_tokens")
        # No max_tokens: the cap is the default.
        resp = await http.post("/v1/chat/completions", json=chat("Hi", ignore_eos=True))
        assert resp.status_code == 200 and resp.json()["usage"]["completion_tokens"] == 8


async def test_body_over_the_limit_is_a_413_declared_or_chunked(engine: Engine) -> None:
    async with app_client(engine, max_body_bytes=2048) as http:
        big = chat("x" * 4096)
        resp = await http.post("/v1/chat/completions", json=big)
        assert_error(resp.status_code, resp.json(), 413, None)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b" " * 512  # JSON whitespace: only the size can refuse it

        resp = await http.post(
            "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_error(resp.status_code, resp.json(), 413, None)
        assert (await http.post("/v1/chat/completions", json=chat("small", max_tokens=1))).status_code == 200
