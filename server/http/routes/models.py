"""GET /v1/models and GET /v1/models/{id}: the base model, and each LoRA adapter with its parent."""

from __future__ import annotations

from fastapi import APIRouter

from server.errors import ModelNotFoundError
from server.http.deps import ServerState, StateDep
from server.http.openapi import error_responses
from server.openai.schemas.models import ModelList, ModelObject

router = APIRouter(tags=["models"])


def _models(state: ServerState) -> list[ModelObject]:
    """As vLLM lists them: an adapter's `root` is its path, its `parent` the base model."""
    card = state.engine.model_card
    base = ModelObject(
        id=state.served_model_name, created=card.created, root=card.root, max_model_len=card.max_model_len
    )
    adapters = [
        base.model_copy(update={"id": a.name, "root": a.path, "parent": base.id})
        for a in state.engine.adapters()
    ]
    return [base, *adapters]


@router.get("/v1/models")
async def list_models(state: StateDep) -> ModelList:
    return ModelList(data=_models(state))


@router.get("/v1/models/{model_id:path}", responses=error_responses(404))
async def get_model(model_id: str, state: StateDep) -> ModelObject:
    found = next((m for m in _models(state) if m.id == model_id), None)
    if found is None:
        raise ModelNotFoundError(f"The model '{model_id}' does not exist.", param="model")
    return found
