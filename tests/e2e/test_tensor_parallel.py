"""Tensor parallelism: the tiny model sharded over two CPU ranks gives TP=1's greedy output."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from server.engine.base import Engine
from tests.e2e.server_process import running_server
from tests.helpers import chat

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PROMPTS = ["Hello there", "Tell me about Mixtral", "Grüße aus Köln, 你好"]


async def test_tp2_greedy_output_equals_tp1(
    client: httpx.AsyncClient, engine: Engine, tmp_path: Path
) -> None:
    tp1 = []
    for prompt in PROMPTS:
        resp = await client.post("/v1/chat/completions", json=chat(prompt, max_tokens=24, temperature=0))
        tp1.append(resp.json()["choices"][0]["message"]["content"])

    with running_server(
        "--tensor-parallel-size", "2", "--max-model-len", "1024", log=tmp_path / "tp2.log"
    ) as url:
        tp2 = []
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            for prompt in PROMPTS:
                resp = await http.post(
                    "/v1/chat/completions", json=chat(prompt, max_tokens=24, temperature=0)
                )
                assert resp.status_code == 200, resp.text
                tp2.append(resp.json()["choices"][0]["message"]["content"])
        log = (tmp_path / "tp2.log").read_text()
    assert "world_size=2" in log or "tensor_parallel_size=2" in log
    assert tp2 == tp1
