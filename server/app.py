"""create_app(settings, engine=None): the FastAPI factory. No module-level app, settings or engine.

The lifespan starts the engine (unless one is handed in, as tests do to share one engine) and stops
it on shutdown. `uvicorn --factory server.app:create_app` builds the settings from the environment.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI

from server import __version__
from server.admission.gate import Admission, Policy
from server.admission.keys import KeyRing
from server.admission.ledger import Ledger
from server.admission.stores import KeyStore, open_key_store
from server.config import Settings
from server.engine import start_engine
from server.engine.base import Engine
from server.engine.warmup import warm_up
from server.frontend import Frontend
from server.http.auth import check_operations_key, get_caller
from server.http.deps import AppState, ServerState
from server.http.error_handlers import install_error_handlers
from server.http.middleware.body_limit import BodyLimitMiddleware
from server.http.middleware.cors import install_cors
from server.http.middleware.drain import LifecycleMiddleware
from server.http.openapi import install_openapi
from server.http.routes import (
    admin,
    chat,
    chat_batch,
    completions,
    health,
    invocations,
    models,
    page,
    responses,
    tokenize,
)
from server.http.routes import lora as lora_admin
from server.lifecycle import Lifecycle
from server.observability.metrics import ServerMetrics
from server.observability.middleware import ObserveMiddleware
from server.prompt.template import ChatTemplate
from server.prompt.tokenizer import Tokenizer
from server.store.responses import ResponseStore

logger = logging.getLogger(__name__)


async def _warm_up(settings: Settings, engine: Engine, frontend: Frontend | None) -> None:
    """One warm-up per engine: run by the only or the first front end; the others wait for it."""
    if frontend is not None and not frontend.leads:
        await frontend.wait_for_warmup()
        return
    if settings.warmup:
        logger.info("warming the engine up before serving")
        await warm_up(engine)
    if frontend is not None:
        frontend.warmed.set()


async def _close_stores(ledger: Ledger | None, store: ResponseStore | None, keys: KeyStore | None) -> None:
    if ledger is not None:
        ledger.close()
    if store is not None:
        store.close()
    if keys is not None:
        await keys.close()


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, frontend: Frontend | None = None
) -> FastAPI:
    """`engine`: an engine already running (tests share one). `frontend`: this process is one of
    several front ends of one engine (see server/process/frontends.py)."""
    settings = settings or Settings()
    metrics = ServerMetrics(
        multiprocess_dir=frontend.metrics_dir if frontend else None,
        api_server=str(frontend.link.index if frontend else 0),
        model=settings.resolved_served_name(),
        request_timeout=settings.request_timeout,
    )
    lifecycle = Lifecycle(settings.shutdown_timeout, settings.shutdown_delay)
    shared = AppState(settings, lifecycle, metrics, KeyRing.from_settings(settings))
    if shared.keys is not None:
        metrics.start_keys(shared.keys.names)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        owned_dirs: list[str] = []
        ledger: Ledger | None = None
        store: ResponseStore | None = None
        link = frontend.link if frontend else None
        # Each step that can take long runs under lifecycle.starting: a stop signal cancels it.
        # The key store first: a --shared-state URL that cannot work fails in seconds, not after
        # the model has loaded.
        keystore = await lifecycle.starting(open_key_store(settings, metrics))
        try:
            running = engine if engine is not None else await lifecycle.starting(start_engine(settings, link))
        except BaseException:
            await keystore.close()
            raise
        try:
            tokenizer = Tokenizer.load(settings.tokenizer or running.model_card.root)
            template = ChatTemplate.load(tokenizer, settings.chat_template)
            if engine is None:
                await lifecycle.starting(_warm_up(settings, running, frontend))
            metrics.watch_engine(running)  # after the warm-up: its requests are not traffic
            # Admission counts live in a file every front end shares (server/admission/ledger.py).
            if frontend is None:
                owned_dirs.append(tempfile.mkdtemp(prefix="mixtral-serve-"))
            ledger = Ledger(Path(frontend.metrics_dir if frontend else owned_dirs[0]) / "admission.sqlite3")
            store = ResponseStore(settings.responses_store_file())
            policy = Policy.from_settings(settings, running.model_card, shared.keys)
            shared.server = ServerState(
                settings=settings,
                engine=running,
                tokenizer=tokenizer,
                template=template,
                metrics=metrics,
                served_model_name=settings.resolved_served_name(),
                admission=Admission(ledger, policy, metrics, shared=keystore.shared, usage=keystore.usage),
                responses=store,
            )
            logger.info(
                "serving %s (max_model_len %d, chat template: %s) on %s",
                settings.resolved_served_name(),
                running.model_card.max_model_len,
                template.source,
                running.model_card.engine_version,
            )
            lifecycle.watch_engine(running)
            lifecycle.serving()
            yield
        finally:
            await lifecycle.stop_watching()
            shared.server = None
            if engine is None:
                await running.shutdown()
            await _close_stores(ledger, store, keystore)
            for path in owned_dirs:
                shutil.rmtree(path, ignore_errors=True)

    app = FastAPI(title="mixtral-serve", version=__version__, lifespan=lifespan)
    app.state.mixtral = shared
    install_openapi(app, shared)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, metrics=metrics)
    app.add_middleware(LifecycleMiddleware, lifecycle=lifecycle)
    install_cors(app, settings)
    # Outermost: it counts and logs every answer, those of the middlewares above included.
    app.add_middleware(ObserveMiddleware, metrics=metrics, log_content=settings.log_request_content)
    _include_routers(app, settings)
    return app


def _include_routers(app: FastAPI, settings: Settings) -> None:
    for module in (chat, chat_batch, completions, invocations, models, responses, tokenize):
        app.include_router(module.router, dependencies=[Depends(get_caller)])
    if settings.allow_runtime_lora:  # reads host paths into the engine: only when asked for
        app.include_router(lora_admin.router, dependencies=[Depends(get_caller)])
    if settings.admin_keys:
        app.include_router(admin.router, dependencies=[Depends(admin.require_admin)])
    app.include_router(health.router, dependencies=[Depends(check_operations_key)])
    app.include_router(page.router)  # the page asks for a key itself when the API needs one
