"""What every route needs, built once by the app's lifespan and reached through typed dependencies.

The dependencies are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread
hop per request for a dictionary lookup."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from fastapi import Depends, Request

from server.admission.gate import Admission
from server.admission.keys import KeyRing
from server.config import Settings
from server.engine.base import Engine
from server.errors import EngineUnavailableError, ModelNotFoundError
from server.lifecycle import Lifecycle
from server.observability.metrics import ServerMetrics
from server.openai.fingerprint import system_fingerprint
from server.prompt.template import ChatTemplate
from server.prompt.tokenizer import Tokenizer
from server.store.responses import ResponseStore


@dataclass
class ServerState:
    settings: Settings
    engine: Engine
    tokenizer: Tokenizer
    template: ChatTemplate
    metrics: ServerMetrics
    served_model_name: str
    admission: Admission
    responses: ResponseStore  # stored responses of the Responses API

    @cached_property
    def system_fingerprint(self) -> str:
        return system_fingerprint(self.engine.model_card, self.settings)

    @property
    def max_model_len(self) -> int:
        return self.engine.model_card.max_model_len

    def check_model(self, requested: str | None) -> str:
        """Requests may omit `model` (the base model); a named model must be the base model or one
        of the LoRA adapters loaded now."""
        if requested is None or requested == self.served_model_name:
            return self.served_model_name
        served = [self.served_model_name, *(a.name for a in self.engine.adapters())]
        if requested in served:
            return requested
        raise ModelNotFoundError(
            f"The model '{requested}' does not exist. This server serves {', '.join(map(repr, served))}.",
            param="model",
        )

    def adapter_for(self, model: str) -> str | None:
        """The LoRA adapter that a checked `model` selects; None: the base model."""
        return None if model == self.served_model_name else model


@dataclass
class AppState:
    """What the app holds for its whole life, made by create_app; `server` only while the engine
    runs (the lifespan sets it). Starlette's `app.state` is untyped: this is its one typed entry."""

    settings: Settings
    lifecycle: Lifecycle
    metrics: ServerMetrics
    keys: KeyRing | None
    server: ServerState | None = None


def app_state(app: Any) -> AppState:
    """The AppState of a Starlette app made by create_app."""
    state: AppState = app.state.mixtral
    return state


async def get_state(request: Request) -> ServerState:
    state = app_state(request.app).server
    if state is None:
        raise EngineUnavailableError("The server is starting or stopping.")
    return state


StateDep = Annotated[ServerState, Depends(get_state)]
