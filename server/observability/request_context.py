"""One record per HTTP exchange, kept by the observing middleware (server/observability/middleware.py)
and read when the exchange ends, for its metrics and its access line.

Two kinds of fact go into it. What the wire shows (status, first byte, whether the client left
first, and with --log-request-content the bodies) the middleware notes as messages pass. What only
the handler learns (the API key's name, the engine requests it ran, their token counts and finish
reasons) the code that learns it reports here, deep in a handler or its stream, rather than passing
it up through return values. Child tasks copy the context, so a stream's tasks report into the same
object. Outside a request (the warm-up, tests calling a handler directly) every report is a no-op.
"""

from __future__ import annotations

import re
import time
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
    method: str = ""
    client: str | None = None
    route: str = "unmatched"  # the route template, once the router has matched one
    start: float = field(default_factory=time.perf_counter)
    # Reported by the handler and its stream.
    api_key: str | None = None  # the key's name, never the key
    engine_request_ids: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reasons: list[str] | None = None  # set once the answer ran to its end
    client_deadline: bool = False  # the request's own `timeout` ended it
    # Seen on the wire.
    status: int = 500  # if the app raised before it responded
    started: bool = False  # the response's start (status and headers) has gone out
    first_byte: float | None = None
    responded: bool = False  # the last body message has gone out
    disconnected: bool = False  # the client left before the response was complete
    request_body: bytearray | None = None  # kept only with --log-request-content
    response_body: bytearray | None = None

    def finish_reason(self) -> str:
        """One value per request: `length` if any choice hit its token limit, else `stop`; `abort` if
        the client left first; `timeout` if the request's own deadline (its `timeout`) ended it, a
        client's outcome, counted apart from server errors; `error` if it failed after the response
        began; `none` if refused or failed before (the status says why)."""
        if self.finish_reasons:
            return "length" if "length" in self.finish_reasons else "stop"
        if self.disconnected:
            return "abort"
        if self.client_deadline:
            return "timeout"
        return "error" if self.status == 200 else "none"


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


def record_client_deadline() -> None:
    """The request's own deadline passed (a 408, or a stream's deadline event)."""
    context = _CURRENT.get()
    if context is not None:
        context.client_deadline = True


def record_usage(prompt_tokens: int, completion_tokens: int, finish_reasons: Iterable[str]) -> None:
    """Called once the answer has run to its end (RequestTimer.finish)."""
    context = _CURRENT.get()
    if context is not None:
        context.prompt_tokens = prompt_tokens
        context.completion_tokens = completion_tokens
        context.finish_reasons = list(finish_reasons)
