"""Shared fixtures: one real vLLM engine (the embedded tiny Mixtral) per test session. And the markers
that select tests: a test's tier is the folder it lives in, so no file has to repeat it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from server.app import create_app
from server.config import Settings, default_cache_dir
from server.engine.base import Engine
from tests.redis_server import RedisServer

# The first folder under tests/ is the tier (`pytest -m unit`, `-m "integration or e2e"`).
TIERS = frozenset({"unit", "integration", "e2e", "deploy", "fuzz", "conformance", "gpu", "multihost"})
ENGINE_TIERS = frozenset({"integration", "e2e", "gpu", "multihost"})
TESTS = Path(__file__).resolve().parent

# Small enough that context-length tests are cheap, large enough for real conversations.
TEST_MAX_MODEL_LEN = 1024


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tier from the folder; `engine` wherever a test runs the real engine: every integration, e2e and
    gpu test (in-process or in the server it starts), and any other that takes the session's."""
    for item in items:
        try:
            tier = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:  # a path given on the command line outside tests/
            continue
        if tier in TIERS:
            item.add_marker(tier)
        if tier in ENGINE_TIERS or "engine" in item.fixturenames:
            item.add_marker("engine")


def cache_dir() -> Path:
    return Path(os.environ.get("MIXTRAL_TEST_CACHE_DIR", default_cache_dir()))


def engine_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "cache_dir": cache_dir(),
        "max_model_len": TEST_MAX_MODEL_LEN,
        "kv_cache_memory_bytes": 256 << 20,
        "max_num_seqs": 32,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def engine() -> AsyncIterator[Engine]:
    from server.engine.vllm import VLLMEngine

    running = await VLLMEngine.start(engine_settings())
    try:
        yield running
    finally:
        await running.shutdown()


@pytest.fixture(scope="session")
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over ASGI, sharing the session's engine."""
    app = create_app(engine_settings(), engine=engine)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test", timeout=120
        ) as http,
    ):
        yield http


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session's shared-store tests; each test uses key names of its own.
    A test that kills its store starts its own RedisServer instead."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.kill()
