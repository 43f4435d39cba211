"""What a front-end process knows of its group, when the server runs as several front ends over one
engine core (server/process/frontends.py starts them; create_app is given this)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from server.engine.base import FrontendLink


@dataclass(frozen=True)
class Frontend:
    """What one front-end process knows of the group it belongs to."""

    link: FrontendLink
    warmed: Any  # a multiprocessing Event, set by front end 0 after the warm-up
    metrics_dir: str

    @property
    def leads(self) -> bool:
        return self.link.index == 0

    async def wait_for_warmup(self) -> None:
        while not self.warmed.is_set():
            await asyncio.sleep(0.2)
