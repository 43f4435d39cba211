"""LoRA adapters on vLLM: names the HTTP layer knows, mapped to vLLM's LoRARequest.

vLLM tells adapters apart by an integer id, and caches an adapter's weights under it. So each name
keeps its id for the life of the engine (an adapter unloaded and loaded again under the same name
gets the same id) and ids are never shared between names. The adapter is loaded into the engine
when it is added, not on its first request: a bad adapter fails the load call, not some later
user's request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

from vllm.lora.request import LoRARequest
from vllm.v1.engine.async_llm import AsyncLLM

from server.engine.base import Adapter
from server.errors import InvalidRequestError, ModelNotFoundError, NotFoundError

logger = logging.getLogger(__name__)


class LoRARegistry:
    def __init__(self, llm: AsyncLLM, base_name: str, enabled: bool) -> None:
        self._llm = llm
        self._base_name = base_name
        self._enabled = enabled
        self._loaded: dict[str, LoRARequest] = {}
        self._ids: dict[str, int] = {}
        self._next_id = itertools.count(1)
        self._lock = asyncio.Lock()  # one load or unload at a time: the name checks hold across awaits

    def adapters(self) -> list[Adapter]:
        return [Adapter(name, request.lora_path) for name, request in self._loaded.items()]

    def request_for(self, name: str | None) -> LoRARequest | None:
        if name is None:
            return None
        found = self._loaded.get(name)
        if found is None:  # unloaded between the request's routing and its start
            raise ModelNotFoundError(f"The model '{name}' does not exist.", param="model")
        return found

    async def add(self, name: str, path: str) -> Adapter:
        async with self._lock:
            self._check_new(name, path)
            lora_id = self._ids.setdefault(name, next(self._next_id))
            request = LoRARequest(lora_name=name, lora_int_id=lora_id, lora_path=path)
            try:
                await self._llm.add_lora(request)
            except Exception as exc:  # the engine's reasons are many (rank, modules, files)
                raise InvalidRequestError(
                    f"The LoRA adapter '{name}' could not be loaded from '{path}': {exc}",
                    param="lora_path",
                    code="invalid_lora_adapter",
                ) from exc
            self._loaded[name] = request
            logger.info("loaded LoRA adapter %s from %s", name, path)
            return Adapter(name, path)

    async def remove(self, name: str) -> None:
        async with self._lock:
            request = self._loaded.pop(name, None)
            if request is None:
                raise NotFoundError(
                    f"No LoRA adapter named '{name}' is loaded.", param="lora_name", code="lora_not_found"
                )
            await self._llm.remove_lora(request.lora_int_id)
            logger.info("unloaded LoRA adapter %s", name)

    def _check_new(self, name: str, path: str) -> None:
        if not name or not path:
            raise InvalidRequestError("Both 'lora_name' and 'lora_path' must be given.", param="lora_name")
        if name == self._base_name or name in self._loaded:
            raise InvalidRequestError(
                f"The name '{name}' is already served; unload it first.",
                param="lora_name",
                code="lora_name_taken",
            )
        if not (Path(path) / "adapter_config.json").is_file():
            raise InvalidRequestError(
                f"'{path}' is not a LoRA adapter folder (it has no adapter_config.json).",
                param="lora_path",
                code="invalid_lora_path",
            )
        if not self._enabled:
            raise InvalidRequestError(
                "This server's engine was started without LoRA support (start it with --enable-lora).",
                code="lora_disabled",
            )
