"""What every error a client can see must look like: OpenAI's error envelope, nothing more.

{"error": {"message": str, "type": str, "param": str | null, "code": str | null}}
"""

from __future__ import annotations

import json
from typing import Any

ERROR_FIELDS = {"message": str, "type": str, "param": (str, type(None)), "code": (str, type(None))}


def openai_error_problem(body: Any) -> str | None:
    """None when `body` is an OpenAI error envelope, else what is wrong with it."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return f"not an object with exactly the key 'error': {body!r:.200}"
    error = body["error"]
    if not isinstance(error, dict) or set(error) != set(ERROR_FIELDS):
        return f"error must have exactly {sorted(ERROR_FIELDS)}: {error!r:.200}"
    for name, kinds in ERROR_FIELDS.items():
        if not isinstance(error[name], kinds):
            return f"error.{name} has the wrong type: {error[name]!r:.200}"
    if not error["message"]:
        return "error.message is empty"
    return None


def response_error_problem(status: int, content_type: str, content: bytes) -> str | None:
    """For a 4xx/5xx response: None when its body is an OpenAI error envelope sent as JSON."""
    if not content_type.startswith("application/json"):
        return f"{status} with content type {content_type!r}, not JSON"
    try:
        body = json.loads(content)
    except ValueError:
        return f"{status} body is not JSON: {content[:200]!r}"
    return openai_error_problem(body)


def sse_error_problems(content: bytes) -> list[str]:
    """For a 200 event stream: every `data:` event parses, error events are OpenAI-shaped and not
    the server's fault, and the stream ends with [DONE]."""
    problems: list[str] = []
    events = [line[len(b"data: ") :] for line in content.split(b"\n") if line.startswith(b"data: ")]
    if not events or events[-1] != b"[DONE]":
        problems.append(f"stream does not end with data: [DONE]: {content[-200:]!r}")
    for event in events[:-1]:
        try:
            payload = json.loads(event)
        except ValueError:
            problems.append(f"event is not JSON: {event[:200]!r}")
            continue
        if isinstance(payload, dict) and "error" in payload:
            problem = openai_error_problem(payload)
            if problem is None and payload["error"]["type"] == "server_error":
                problem = f"stream failed on the server: {payload['error']['message']}"
            if problem:
                problems.append(problem)
    return problems


def responses_sse_problems(content: bytes) -> list[str]:
    """For a 200 stream of POST /v1/responses: `event:` + `data:` pairs naming the same type,
    sequence numbers 0, 1, 2 ..., no [DONE], and a last event that finished the response (a failure
    is the server's fault on a generated request: its deadline is minutes away)."""
    problems: list[str] = []
    payloads: list[dict[str, Any]] = []
    for block in filter(None, content.split(b"\n\n")):
        lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if not line.startswith(b":"))
        try:
            payload = json.loads(lines[b"data"])
        except (KeyError, ValueError):
            problems.append(f"event without JSON data: {block[:200]!r}")
            continue
        if lines.get(b"event", b"").decode() != payload.get("type"):
            problems.append(f"event line does not name the type: {block[:200]!r}")
        payloads.append(payload)
    if [p.get("sequence_number") for p in payloads] != list(range(len(payloads))):
        problems.append("sequence numbers are not 0, 1, 2, ...")
    if not payloads or payloads[-1].get("type") not in ("response.completed", "response.incomplete"):
        problems.append(f"stream does not end with a finished response: {content[-200:]!r}")
    return problems
