"""What one HTTP request has told the server about itself, for its log line: its id, the API key's
name, the engine requests it ran, and their token counts and finish reasons.

The access-log middleware (server/observability/access_log.py) opens one RequestContext per request; the code
that learns each fact, deep in a handler or its stream, reports it here rather than passing it up
through return values. Child tasks copy the context, so a stream's tasks report into the same object.
Outside a request (the warm-up, tests calling a handler directly) every report is a no-op.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

REQUEST_ID_HEADER = "x-request-id"
# A client's id is kept when it is short and made of characters that are safe in a header, a log
# line and a URL (UUIDs, ULIDs, base64, trace ids); anything else is replaced, never echoed.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


@dataclass(slots=True)
class RequestContext:
    request_id: str
    api_key: str | None = None  # the key's name, never the key
    engine_request_ids: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reasons: list[str] | None = None


_CURRENT: ContextVar[RequestContext | None] = ContextVar("mixtral_request_context", default=None)


def accept_request_id(raw: bytes | None) -> str:
    """The client's X-Request-Id if it is well formed, else a new one."""
    if raw is not None and _VALID_REQUEST_ID.fullmatch(raw):
        return raw.decode("ascii")
    return uuid.uuid4().hex


@contextmanager
def opened(context: RequestContext) -> Iterator[RequestContext]:
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def current() -> RequestContext | None:
    return _CURRENT.get()


def current_request_id() -> str | None:
    context = _CURRENT.get()
    return context.request_id if context is not None else None


def record_api_key(name: str | None) -> None:
    """Called once the caller is known (server/http/auth.py): the name of the key it presented."""
    context = _CURRENT.get()
    if context is not None:
        context.api_key = name


def record_engine_requests(request_ids: Iterable[str]) -> None:
    context = _CURRENT.get()
    if context is not None:
        context.engine_request_ids.extend(request_ids)


def record_usage(prompt_tokens: int, completion_tokens: int, finish_reasons: Iterable[str]) -> None:
    """Called once the answer has run to its end (RequestTimer.finish)."""
    context = _CURRENT.get()
    if context is not None:
        context.prompt_tokens = prompt_tokens
        context.completion_tokens = completion_tokens
        context.finish_reasons = list(finish_reasons)
