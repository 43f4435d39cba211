"""create_app(settings, engine=None): the FastAPI factory. No module-level app, settings or engine.

The lifespan starts the engine (unless one is handed in, as tests do to share one engine) and stops
it on shutdown. `uvicorn --factory server.app:create_app` builds the settings from the environment.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server import __version__
from server.api import chat, completions, health, models
from server.chat_template import ChatTemplate
from server.config import Settings
from server.engine import start_engine
from server.engine.base import Engine
from server.errors import install_error_handlers
from server.metrics import HTTPMetricsMiddleware, ServerMetrics
from server.state import ServerState
from server.tokenizer import Tokenizer

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = engine if engine is not None else await start_engine(settings)
        try:
            tokenizer = Tokenizer.load(settings.tokenizer or running.model_card.root)
            template = ChatTemplate(tokenizer)
            metrics.watch_engine(running.stats)
            app.state.server = ServerState(
                settings=settings,
                engine=running,
                tokenizer=tokenizer,
                template=template,
                metrics=metrics,
                served_model_name=settings.resolved_served_name(),
            )
            logger.info(
                "serving %s (max_model_len %d, chat template: %s) on %s",
                settings.resolved_served_name(),
                running.model_card.max_model_len,
                template.source,
                running.model_card.engine_version,
            )
            yield
        finally:
            app.state.server = None
            if engine is None:
                await running.shutdown()

    app = FastAPI(title="mixtral-serve", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(HTTPMetricsMiddleware, metrics=metrics)
    for module in (chat, completions, models, health):
        app.include_router(module.router)
    return app
