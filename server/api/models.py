"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from fastapi import APIRouter

from server.errors import ModelNotFoundError
from server.schemas.common import ErrorResponse
from server.schemas.models import ModelList, ModelObject
from server.state import ServerState, StateDep

router = APIRouter(tags=["models"])


def _model(state: ServerState) -> ModelObject:
    card = state.engine.model_card
    return ModelObject(
        id=state.served_model_name, created=card.created, root=card.root, max_model_len=card.max_model_len
    )


@router.get("/v1/models")
async def list_models(state: StateDep) -> ModelList:
    return ModelList(data=[_model(state)])


@router.get("/v1/models/{model_id:path}", responses={404: {"model": ErrorResponse}})
async def get_model(model_id: str, state: StateDep) -> ModelObject:
    if model_id != state.served_model_name:
        raise ModelNotFoundError(f"The model '{model_id}' does not exist.", param="model")
    return _model(state)
