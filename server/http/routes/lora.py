"""POST /v1/load_lora_adapter and /v1/unload_lora_adapter: LoRA adapters loaded at run time.

Loading reads any path on the server's host into the engine, so these routes exist only with
--allow-runtime-lora, and sit behind the API key like every API route when keys are set.
With several front-end processes, an adapter loaded here is served by this process only;
adapters every process serves belong in --lora-modules.
"""

from __future__ import annotations

from fastapi import APIRouter

from server.http.deps import StateDep
from server.http.openapi import error_responses
from server.openai.schemas.lora import LoadLoRAAdapterRequest, UnloadLoRAAdapterRequest
from server.openai.schemas.models import ModelObject

router = APIRouter(tags=["lora"])
ERRORS = error_responses(400, 401, 404)


@router.post("/v1/load_lora_adapter", responses=ERRORS)
async def load_lora_adapter(body: LoadLoRAAdapterRequest, state: StateDep) -> ModelObject:
    """Load an adapter and serve it under `lora_name`; answers with its /v1/models entry."""
    adapter = await state.engine.add_adapter(body.lora_name, body.lora_path)
    card = state.engine.model_card
    return ModelObject(
        id=adapter.name,
        created=card.created,
        root=adapter.path,
        parent=state.served_model_name,
        max_model_len=card.max_model_len,
    )


@router.post("/v1/unload_lora_adapter", responses=ERRORS)
async def unload_lora_adapter(body: UnloadLoRAAdapterRequest, state: StateDep) -> dict[str, str]:
    await state.engine.remove_adapter(body.lora_name)
    return {"id": body.lora_name, "object": "lora_adapter", "status": "unloaded"}
