"""The access line of real chat requests on the real engine.

A unique marker in the prompt proves that no prompt text reaches any log record, from any logger
(ours, uvicorn's, vLLM's in-process ones), unless --log-request-content asks for it.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from server.engine.base import Engine
from tests.app_client import app_client
from tests.helpers import chat, metric_value, stream_events
from tests.log_capture import Capture, captured_logs

CHAT = "/v1/chat/completions"
TOKENS = 4


def the_line(logs: Capture, request_id: str) -> dict[str, object]:
    (record,) = [r for r in logs.access() if r.request_id == request_id]  # type: ignore[attr-defined]
    return dict(record.__dict__)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_chat_request_logs_one_line_with_its_token_counts(
    client: httpx.AsyncClient, stream: bool
) -> None:
    request_id = f"test-{uuid.uuid4().hex}"
    body = chat("Log me", max_tokens=TOKENS, ignore_eos=True, temperature=0, stream=stream)
    with captured_logs() as logs:
        if stream:
            body["stream_options"] = {"include_usage": True}
            events = await stream_events(client, CHAT, body | {"stream": True})
            usage = events[-1]["usage"]
        else:
            response = await client.post(CHAT, json=body, headers={"X-Request-Id": request_id})
            assert response.status_code == 200, response.text
            assert response.headers["x-request-id"] == request_id
            usage = response.json()["usage"]
    if stream:  # stream_events sends no header: the generated id is the line's
        (record,) = logs.access()
        request_id = record.request_id  # type: ignore[attr-defined]
    line = the_line(logs, request_id)
    assert (line["method"], line["path"], line["status"]) == ("POST", CHAT, 200)
    assert line["prompt_tokens"] == usage["prompt_tokens"] > 0
    assert line["completion_tokens"] == usage["completion_tokens"] == TOKENS
    assert line["finish_reasons"] == ["length"]
    engine_ids = line["engine_request_ids"]
    assert isinstance(engine_ids, list) and len(engine_ids) == 1 and engine_ids[0].startswith("chatcmpl-")
    assert isinstance(line["ttfb_ms"], float) and line["duration_ms"] >= line["ttfb_ms"]


async def test_a_refused_request_is_logged_with_its_status_and_no_tokens(client: httpx.AsyncClient) -> None:
    with captured_logs() as logs:
        response = await client.post(CHAT, json=chat("x", model="nope"))
    assert response.status_code == 404
    (record,) = logs.access()
    assert record.status == 404 and record.prompt_tokens is None  # type: ignore[attr-defined]
    assert record.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("stream", [False, True])
async def test_no_prompt_or_output_text_reaches_any_log_record(
    client: httpx.AsyncClient, stream: bool
) -> None:
    marker = f"marker{uuid.uuid4().hex}"
    body = chat(f"Remember {marker} please", max_tokens=TOKENS, temperature=0, stream=stream)
    with captured_logs() as logs:
        response = await client.post(CHAT, json=body)
        assert response.status_code == 200
        bad = await client.post(CHAT, json=chat(marker, model=marker))  # echoed in the 404's body
        assert bad.status_code == 404
    output = response.text
    assert logs.access() and len(output) > 0
    rendered = "\n".join(logs.rendered())
    assert marker not in rendered
    assert '"content"' not in rendered  # no message and no output text


async def test_with_log_request_content_the_bodies_are_logged(engine: Engine) -> None:
    marker = f"marker{uuid.uuid4().hex}"
    async with app_client(engine, log_request_content=True) as http:
        with captured_logs() as logs:
            response = await http.post(CHAT, json=chat(marker, max_tokens=TOKENS, temperature=0))
    (record,) = logs.access()
    assert marker in record.request_body  # type: ignore[attr-defined]
    assert record.response_body == response.text  # type: ignore[attr-defined]


async def test_refusals_of_the_inner_middlewares_are_counted_and_logged_as_the_client_saw_them(
    engine: Engine,
) -> None:
    """The observer sits outside the body limit and the drain: their 413 and 503, sent before any
    route matched, reach the metrics and the access line with their status and the request's id."""
    async with app_client(engine, max_body_bytes=2048) as http:
        with captured_logs() as logs:
            too_large = await http.post(CHAT, json=chat("x" * 4096), headers={"X-Request-Id": "big-1"})
            http.app_state.lifecycle.begin_drain()  # type: ignore[attr-defined]
            draining = await http.post(CHAT, json=chat("x"), headers={"X-Request-Id": "late-1"})
        metrics = (await http.get("/metrics")).text
    assert (too_large.status_code, draining.status_code) == (413, 503)
    for response, request_id in ((too_large, "big-1"), (draining, "late-1")):
        assert response.headers["x-request-id"] == request_id
        line = the_line(logs, request_id)
        assert (line["path"], line["status"]) == ("unmatched", response.status_code)
        labels = f'route="unmatched",status="{response.status_code}"'
        assert metric_value(metrics, "mixtral_http_requests_total", labels) == 1
    generation = [line for line in metrics.splitlines() if line.startswith("mixtral_requests_total{")]
    assert all(line.endswith(" 0.0") for line in generation)  # no route: not a generation request
