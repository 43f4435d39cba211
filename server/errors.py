"""Every error a client can see, and the one table that maps each to an HTTP status and OpenAI body.

Errors are raised, never returned. The same table renders the JSON response and the SSE error
event sent when a stream fails after it started. This module knows no web framework: the engine
and the lower layers raise these, and server/http/error_handlers.py turns them into responses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class APIError(Exception):
    """Base of all client-visible errors. `code` is OpenAI's machine-readable code, if any."""

    default_code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code


class InvalidRequestError(APIError):
    pass


class ContextLengthExceededError(InvalidRequestError):
    default_code = "context_length_exceeded"


class AuthenticationError(APIError):
    default_code = "invalid_api_key"


class PermissionDeniedError(APIError):
    """A known key that may not do this (e.g. read the admin routes without being an admin key)."""

    default_code = "permission_denied"


class NotFoundError(APIError):
    pass


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class PayloadTooLargeError(APIError):
    pass


class RateLimitError(APIError):
    """`retry_after`: seconds; `token`: the place in line the retry may present (X-Retry-Token)."""

    def __init__(
        self, message: str, *, retry_after: float, code: str | None = None, token: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.token = token


class EngineUnavailableError(APIError):
    """The engine is dead, stopping or not started: the client may retry elsewhere or later."""

    default_code = "engine_unavailable"


class ClientDisconnectedError(APIError):
    """The client left before its answer was ready; nobody reads this response."""


class RequestTimeoutError(APIError):
    """The server's deadline (`--request-timeout`) passed; its work was stopped."""

    default_code = "request_timeout"


class DeadlineExceededError(APIError):
    """The deadline the client chose (the request's `timeout`) passed first; its work was stopped.
    A 4xx, not the server's 504: the client's choice is the client's outcome, and must not count
    as a server failure in the error-rate metrics and alerts."""

    default_code = "deadline_exceeded"


class EngineError(APIError):
    """The engine failed a request for a reason that is not the client's."""


RETRY_TOKEN_HEADER = "X-Retry-Token"


@dataclass(frozen=True)
class ErrorKind:
    status: int
    type: str


# THE table. Lookup walks the exception's MRO, so a subclass inherits its parent's row.
ERROR_TABLE: dict[type[APIError], ErrorKind] = {
    InvalidRequestError: ErrorKind(400, "invalid_request_error"),
    AuthenticationError: ErrorKind(401, "authentication_error"),
    PermissionDeniedError: ErrorKind(403, "permission_error"),
    NotFoundError: ErrorKind(404, "invalid_request_error"),
    PayloadTooLargeError: ErrorKind(413, "invalid_request_error"),
    RateLimitError: ErrorKind(429, "rate_limit_error"),
    EngineError: ErrorKind(500, "server_error"),
    EngineUnavailableError: ErrorKind(503, "service_unavailable"),
    RequestTimeoutError: ErrorKind(504, "timeout_error"),
    DeadlineExceededError: ErrorKind(408, "timeout_error"),
    ClientDisconnectedError: ErrorKind(499, "client_closed_request"),
}
_FALLBACK = ErrorKind(500, "server_error")


def kind_of(exc: APIError) -> ErrorKind:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return _FALLBACK


def error_body(exc: APIError) -> dict[str, Any]:
    return {
        "error": {
            "message": exc.message,
            "type": kind_of(exc).type,
            "param": exc.param,
            "code": exc.code,
        }
    }


def error_headers(exc: APIError) -> dict[str, str]:
    """Headers the status needs on a 429: Retry-After in whole seconds (at least one, rounded up,
    as HTTP has it), retry-after-ms exact (OpenAI's SDKs read it first), and the place in line."""
    if isinstance(exc, RateLimitError):
        headers = {
            "Retry-After": str(max(1, math.ceil(exc.retry_after))),
            "retry-after-ms": str(max(1, math.ceil(exc.retry_after * 1000))),
        }
        if exc.token is not None:
            headers[RETRY_TOKEN_HEADER] = exc.token
        return headers
    return {}
