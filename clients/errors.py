"""Errors the client raises: one for an HTTP error answer, one for a server that cannot be reached."""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """Base of everything the client raises."""


class APIConnectionError(ClientError):
    """No answer: the connection failed or timed out (`timeout` tells which)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class APIError(ClientError):
    """An error answer (4xx/5xx), or an error event in the middle of a stream (status None).

    The fields are those of OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`;
    servers that answer in another shape keep their text in `message`."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(f"{status or 'stream'}: {message}")
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param

    @classmethod
    def from_body(cls, status: int | None, body: Any) -> APIError:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(
                str(error.get("message", "")),
                status=status,
                type=error.get("type"),
                code=None if error.get("code") is None else str(error.get("code")),
                param=error.get("param"),
            )
        return cls(str(error or body), status=status)

    @classmethod
    def from_response(cls, response: httpx.Response) -> APIError:
        """`response` must have been read."""
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:500] or response.reason_phrase
        return cls.from_body(response.status_code, body)
