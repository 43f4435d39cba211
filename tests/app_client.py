"""An app of its own settings, in-process over ASGI, on the test session's engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from server.app import create_app
from server.engine.base import Engine
from server.http.deps import app_state
from tests.conftest import engine_settings


@asynccontextmanager
async def app_client(engine: Engine, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own settings over the session's engine. What its lifespan built (engine,
    admission, ...) is at `client.app_state`."""
    app = create_app(engine_settings(**settings), engine=engine)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test", timeout=120
        ) as http,
    ):
        http.app_state = app_state(app)  # type: ignore[attr-defined]
        yield http


@asynccontextmanager
async def template_client(engine: Engine, template: str, folder: Path) -> AsyncIterator[httpx.AsyncClient]:
    """app_client with `template` as the operator's --chat-template file, written into `folder`."""
    path = folder / "chat.jinja"
    path.write_text(template)
    async with app_client(engine, chat_template=path) as http:
        yield http
