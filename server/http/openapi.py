"""What the OpenAPI document says a route can answer besides success: each listed status with the
OpenAI error body (the statuses come from server/errors.py's table)."""

from __future__ import annotations

from typing import Any

from server.openai.schemas.common import ErrorResponse


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


# The generating routes: bad input, key, model, body size, admission, engine, deadlines (the
# request's own: 408; the server's: 504).
GENERATION_ERRORS = error_responses(400, 401, 404, 408, 413, 429, 503, 504)
