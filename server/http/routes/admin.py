"""GET /v1/admin/usage: what an API key used, per UTC day, as the per-key store has it.

With --shared-state that is the fleet's sum (every replica adds to the same Redis hashes); without,
this host's usage file. Only the keys named in --admin-keys may read it; without admin keys the
route answers 404, as if it did not exist.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from server.errors import NotFoundError, PermissionDeniedError
from server.http.deps import StateDep, app_state
from server.http.openapi import error_responses

router = APIRouter(tags=["admin"])
MAX_DAYS = 400  # the shared store keeps usage this long


class DayUsageObject(BaseModel):
    date: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class KeyUsage(BaseModel):
    object: str = "list"
    key: str
    data: list[DayUsageObject]
    total: DayUsageObject


async def require_admin(request: Request) -> None:
    """Router dependency: 401 without a key, 403 for a key not in --admin-keys. Runs before the
    route's own parameters, so a caller that may not read usage learns nothing else first."""
    app = app_state(request.app)
    if app.keys is None or not app.settings.admin_keys:
        raise NotFoundError("Not Found")
    name = app.keys.identify(request.headers.get("authorization"))
    if name not in app.settings.admin_keys:
        raise PermissionDeniedError(f"API key '{name}' may not read admin routes (see --admin-keys).")


@router.get("/v1/admin/usage", responses=error_responses(400, 401, 403, 404, 503))
async def key_usage(
    request: Request,
    state: StateDep,
    key: Annotated[str, Query(description="The API key's name (never its secret).")],
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days back, today (UTC) last.")] = 7,
) -> KeyUsage:
    keys = app_state(request.app).keys
    if keys is None or key not in keys.names:
        raise NotFoundError(f"No API key is named '{key}'.", param="key")
    rows = await state.admission.key_limits.usage(key, days, time.time())
    data = [
        DayUsageObject(
            date=row.day,
            requests=row.requests,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            total_tokens=row.prompt_tokens + row.completion_tokens,
        )
        for row in rows
    ]
    total = DayUsageObject(
        date=f"{data[0].date}/{data[-1].date}" if data else "",
        requests=sum(d.requests for d in data),
        prompt_tokens=sum(d.prompt_tokens for d in data),
        completion_tokens=sum(d.completion_tokens for d in data),
        total_tokens=sum(d.total_tokens for d in data),
    )
    return KeyUsage(key=key, data=data, total=total)
