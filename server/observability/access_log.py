"""One log line per HTTP request, written when the request ends (for a stream: when the stream
ends), from the exchange's record (server/observability/request_context.py).

The line holds the request's id (the one X-Request-Id carries back to the client), so a proxy's or a
tracer's id joins our line to theirs. What a client sent and what it got (prompts, outputs) reaches
the log only with --log-request-content: then the line also holds the request body and the response
body (for a stream: its events), each cut at CONTENT_LIMIT bytes by the middleware that keeps them.
"""

from __future__ import annotations

import logging
from typing import Any

from server.observability.request_context import RequestContext

logger = logging.getLogger("server.access")

CONTENT_LIMIT = 64 << 10


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def access_fields(context: RequestContext, end: float) -> dict[str, Any]:
    """The fields of one access line, in the order they are written."""
    first_byte = context.first_byte
    fields = {
        "request_id": context.request_id,
        "method": context.method,
        "path": context.route,  # the route template: bounded, and free of what a client put in the URL
        "status": context.status,
        "duration_ms": _ms(end - context.start),
        "ttfb_ms": _ms(first_byte - context.start) if first_byte is not None else None,
        "prompt_tokens": context.prompt_tokens,
        "completion_tokens": context.completion_tokens,
        "finish_reasons": context.finish_reasons,
        "engine_request_ids": context.engine_request_ids,
        "api_key": context.api_key,
        "client": context.client,
        "client_disconnected": context.disconnected,
    }
    for name, body in (("request_body", context.request_body), ("response_body", context.response_body)):
        if body is not None:
            fields[name] = body.decode("utf-8", errors="replace")
    return fields


def log_exchange(context: RequestContext, end: float) -> None:
    fields = access_fields(context, end)
    logger.info("%s %s %d", context.method, context.route, context.status, extra=fields)
