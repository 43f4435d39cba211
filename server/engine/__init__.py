"""The only package that imports vllm, and only in its vllm*.py modules, loaded on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.config import Settings
from server.engine.base import Engine, FrontendLink


async def start_engine(settings: Settings, link: FrontendLink | None = None) -> Engine:
    from server.engine.vllm import VLLMEngine

    return await VLLMEngine.start(settings, link)


def default_api_server_count() -> int:
    from server.engine.vllm import default_api_server_count as default

    return default()


def run_frontends(
    settings: Settings, count: int, listen_address: str, target: Any, payload: Any, engine_gone: Any
) -> int:
    from server.engine.vllm_frontends import run_frontends as run

    return run(settings, count, listen_address, target, payload, engine_gone)


def run_headless(settings: Settings) -> int:
    from server.engine.vllm_headless import run_headless as run

    return run(settings)


def quantize_checkpoint(src: Path, dst: Path, scheme: str) -> Any:
    from server.engine.quantize import quantize_checkpoint as run

    return run(src, dst, scheme)


def quantization_schemes() -> tuple[str, ...]:
    from server.engine.quantize import SCHEMES

    return SCHEMES
