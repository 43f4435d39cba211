"""The only package that imports vllm, and only in vllm.py, loaded when an engine is started."""

from __future__ import annotations

from server.config import Settings
from server.engine.base import Engine


async def start_engine(settings: Settings) -> Engine:
    from server.engine.vllm import VLLMEngine

    return await VLLMEngine.start(settings)
