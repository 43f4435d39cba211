"""uvicorn under our drain: the first SIGTERM/SIGINT starts one, the process ends when it is done
(see server/lifecycle.py for why)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from types import FrameType
from typing import NoReturn

import uvicorn

from server.lifecycle import Lifecycle, Phase

logger = logging.getLogger(__name__)

GRACE_AFTER_DRAIN_S = 1


class DrainingServer(uvicorn.Server):
    """uvicorn, with the first SIGTERM/SIGINT starting a drain (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:  # noqa: ARG002
        # Not recorded in _captured_signals: uvicorn re-raises those after its shutdown, and the
        # default SIGTERM action would then end a clean drain with status -15 instead of 0.
        if self.lifecycle.phase in (Phase.STARTING, Phase.SERVING):
            self.lifecycle.begin_drain()
            return
        logger.info("signal %d: not waiting for open requests", sig)
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        return await super().on_tick(counter) or self.lifecycle.finished()


def serve(lifecycle: Lifecycle, config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> int:
    """Run until drained or the engine died; returns the exit status. The drain did the waiting,
    so uvicorn's own graceful timeout only covers requests still open after it."""
    config.timeout_graceful_shutdown = GRACE_AFTER_DRAIN_S
    DrainingServer(config, lifecycle).run(sockets=sockets)
    return lifecycle.exit_code


def exit_now(code: int) -> NoReturn:
    """End the process once uvicorn and the engine have stopped, without the interpreter's own
    teardown: collecting the modules of torch and vLLM took about 5 s on the CPU machine, all of it
    after the last request and the engine had ended, and pushed the exit past --shutdown-timeout + 2 s.
    Nothing is left to finalize: logs and stdio are flushed here, the engine's processes are gone."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
