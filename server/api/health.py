"""GET /health, /version and /metrics: for supervisors, load balancers and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from server import __version__
from server.schemas.models import VersionInfo
from server.state import StateDep

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health(state: StateDep) -> Response:
    """200 while the engine is alive; 503 (raised by check_health) otherwise."""
    await state.engine.check_health()
    return Response(status_code=200)


@router.get("/version")
async def version(state: StateDep) -> VersionInfo:
    return VersionInfo(version=__version__, engine=state.engine.model_card.engine_version)


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
