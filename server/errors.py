"""Every error a client can see, and the one table that maps each to an HTTP status and OpenAI body.

Errors are raised, never returned. The same table renders the JSON response and the SSE error
event sent when a stream fails after it started.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


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


class NotFoundError(APIError):
    pass


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class PayloadTooLargeError(APIError):
    pass


class RateLimitError(APIError):
    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class EngineUnavailableError(APIError):
    """The engine is dead, stopping or not started: the client may retry elsewhere or later."""

    default_code = "engine_unavailable"


class ClientDisconnectedError(APIError):
    """The client left before its answer was ready; nobody reads this response."""


class RequestTimeoutError(APIError):
    """The request's deadline (server default or its own `timeout`) passed; its work was stopped."""

    default_code = "request_timeout"


class EngineError(APIError):
    """The engine failed a request for a reason that is not the client's."""


@dataclass(frozen=True)
class ErrorKind:
    status: int
    type: str


# THE table. Lookup walks the exception's MRO, so a subclass inherits its parent's row.
ERROR_TABLE: dict[type[APIError], ErrorKind] = {
    InvalidRequestError: ErrorKind(400, "invalid_request_error"),
    AuthenticationError: ErrorKind(401, "authentication_error"),
    NotFoundError: ErrorKind(404, "invalid_request_error"),
    PayloadTooLargeError: ErrorKind(413, "invalid_request_error"),
    RateLimitError: ErrorKind(429, "rate_limit_error"),
    EngineError: ErrorKind(500, "server_error"),
    EngineUnavailableError: ErrorKind(503, "service_unavailable"),
    RequestTimeoutError: ErrorKind(504, "timeout_error"),
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


def error_response(exc: APIError) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimitError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse(error_body(exc), status_code=kind_of(exc).status, headers=headers)


MAX_LISTED_PROBLEMS = 8


@dataclass(frozen=True)
class _Problem:
    param: str
    msg: str
    kind: str  # pydantic's error type; "" for a merged union message
    rank: tuple[int, bool]


def _client_path(loc: tuple[Any, ...], body: Any, missing: bool) -> tuple[list[str | int], str | None]:
    """The path as the client wrote it, and where it first went through a union (None: it did not).

    Pydantic's `loc` also names the union member it tried (`str`, `list[int]`, `function-after[..]`,
    a discriminator's tag): those are not in the client's JSON, so the path follows the body and
    drops them. A final key the body lacks is kept when the error is that it is missing."""
    path: list[str | int] = []
    union: str | None = None
    node = body
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif not (missing and i == len(loc) - 1):
            if union is None:
                union = ".".join(map(str, path))
            continue  # a union member's tag
        path.append(part)
    return path, union


def _problem_text(msg: str, kind: str) -> str:
    """pydantic's message with its error type, as pydantic prints it (`[type=less_than_equal]`):
    clients written against vLLM, whose 400s list pydantic's raw errors, match on the type. Our own
    validators' messages (`value_error`) are sentences of their own and keep no tag."""
    if kind in ("", "value_error"):
        return msg
    return f"{msg} [type={kind}]"


def _validation_to_api_error(exc: RequestValidationError) -> InvalidRequestError:
    """FastAPI's 422 becomes OpenAI's 400 naming the offending fields as the client wrote them:
    `param` is the first, the message lists each problem (so every bad key of a `logit_bias`).
    A union reports one error per member it tried; only the one that got furthest is kept."""
    errors = exc.errors()
    if not errors:
        return InvalidRequestError("Invalid request.")
    if errors[0].get("type") == "json_invalid":
        return InvalidRequestError(f"The request body is not valid JSON: {errors[0].get('msg', '')}")
    problems: dict[tuple[str, str], _Problem] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        loc = loc[1:] if loc[:1] == ("body",) else loc
        kind = str(error.get("type", ""))
        path, union = _client_path(loc, exc.body, kind == "missing")
        param = ".".join(map(str, path))
        msg = str(error.get("msg", "Invalid value")).removeprefix("Value error, ")
        # How far the member got: deeper, then one whose type fitted (a failed constraint, not "_type").
        rank = (len(loc), not kind.endswith("_type"))
        key = ("union", union) if union is not None else ("field", param)
        known = problems.get(key)
        if known is None or known.rank < rank:
            problems[key] = _Problem(param, msg, kind, rank)
        elif union is not None and known.rank == rank and known.param == param and msg not in known.msg:
            # No member got further: say what each wanted ("a valid string or a valid list"); the
            # merged sentence has no single pydantic type.
            merged = f"{known.msg} or {msg.removeprefix('Input should be ')}"
            problems[key] = _Problem(param, merged, "", rank)
    found = list(problems.values())
    texts = [_problem_text(p.msg, p.kind) for p in found[:MAX_LISTED_PROBLEMS]]
    listed = [f"{p.param}: {text}" if p.param else text for p, text in zip(found, texts, strict=False)]
    more = f" (and {len(found) - len(listed)} more problems)" if len(found) > len(listed) else ""
    return InvalidRequestError("; ".join(listed) + more, param=found[0].param or None)


_HTTP_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    405: NotFoundError,
    413: PayloadTooLargeError,
}


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_validation_to_api_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        cls = _HTTP_STATUS_ERRORS.get(exc.status_code, InvalidRequestError)
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404:
            detail = f"No route {request.method} {request.url.path}."
        elif exc.status_code == 405:
            detail = f"Method {request.method} is not allowed on {request.url.path}."
        resp = error_response(cls(detail))
        resp.status_code = exc.status_code
        resp.headers.update(exc.headers or {})  # e.g. Allow on 405
        return resp

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(EngineError("Internal server error."))

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
