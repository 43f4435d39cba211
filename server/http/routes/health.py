"""GET /health (and SageMaker's /ping), /ready, /version and /metrics: for supervisors, load
balancers and Prometheus.

/health is liveness (restart me if this fails): 200 while the engine is alive, even while draining.
/ready is readiness (send me traffic): 200 only while serving; 503 while starting, draining or
after the engine died."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from server import __version__
from server.errors import EngineUnavailableError
from server.http.deps import StateDep, app_state
from server.http.openapi import error_responses
from server.openai.schemas.models import VersionInfo

router = APIRouter(tags=["operations"])

_ALIVE: dict[int | str, dict[str, Any]] = {200: {"description": "Alive; empty body."}, **error_responses(503)}


@router.get(
    "/health",
    response_class=Response,
    responses=_ALIVE,
)
async def health(state: StateDep) -> Response:
    """200 while the engine is alive; 503 (raised by check_health) otherwise."""
    await state.engine.check_health()
    return Response(status_code=200)


@router.get("/ping", response_class=Response, responses=_ALIVE, operation_id="ping_get")
@router.post("/ping", response_class=Response, responses=_ALIVE, operation_id="ping_post")
async def ping(state: StateDep) -> Response:
    """SageMaker's liveness probe (GET or POST), which `vllm serve` answers as /health."""
    return await health(state)


@router.get(
    "/ready",
    response_class=Response,
    responses={200: {"description": "Serving; empty body."}, **error_responses(503)},
)
async def ready(request: Request, state: StateDep) -> Response:
    lifecycle = app_state(request.app).lifecycle
    if lifecycle.leaving:
        raise EngineUnavailableError("The server is shutting down.", code="shutting_down")
    await state.engine.check_health()
    if not lifecycle.ready:
        raise EngineUnavailableError("The server is starting.")
    return Response(status_code=200)


@router.get("/version")
async def version(state: StateDep) -> VersionInfo:
    return VersionInfo(version=__version__, engine=state.engine.model_card.engine_version)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(state: StateDep, request: Request) -> Response:
    """`?name[]=a&name[]=b`: only those samples, as vLLM's /metrics (prometheus-client's handler)."""
    names = request.query_params.getlist("name[]")
    return Response(state.metrics.render(names), media_type=CONTENT_TYPE_LATEST)
