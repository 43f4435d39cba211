"""Small helpers shared by the integration and e2e tests."""

from __future__ import annotations

import json
from typing import Any

import httpx


def sse_events(raw: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order (pings and blank lines dropped)."""
    return [line[len("data: ") :] for line in raw.splitlines() if line.startswith("data: ")]


async def stream_events(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streaming request; return the JSON events, asserting it ended with [DONE]."""
    async with client.stream("POST", path, json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = (await resp.aread()).decode()
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **extra}


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format; 0 if absent."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == wanted:
            return float(value)
    return 0.0


def assert_usage(usage: dict[str, Any], prompt: int, completion: int) -> None:
    """OpenAI's usage with these counts; cached_tokens is whatever the prefix cache held (it depends on
    the requests before)."""
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert 0 <= cached <= prompt
    assert usage == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
