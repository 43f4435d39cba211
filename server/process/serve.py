"""uvicorn under our drain: the first SIGTERM/SIGINT starts one, the process ends when it is done
(see server/lifecycle.py for why).

A signal during the start-up makes the app's lifespan give up (StartupStopped), which uvicorn can
only report as a failed start-up (status 3, and the traceback at ERROR). Here that is a clean
stop: status 0, one info line, and never a listening socket."""

from __future__ import annotations

import logging
import os
import socket
import sys
from types import FrameType
from typing import NoReturn

import uvicorn
from fastapi import FastAPI

from server.config import Settings
from server.lifecycle import Lifecycle, Phase
from server.observability import logs

UVICORN_ERRORS = "uvicorn.error"

logger = logging.getLogger(__name__)

GRACE_AFTER_DRAIN_S = 1


def uvicorn_config(app: FastAPI, settings: Settings, **where: object) -> uvicorn.Config:
    """uvicorn's settings for one HTTP process: our logging, the keep-alive timeout, and where to
    listen (host and port, or none when the caller passes sockets)."""
    return uvicorn.Config(
        app,
        timeout_keep_alive=settings.timeout_keep_alive,
        **where,  # type: ignore[arg-type]
        **logs.uvicorn_logging(settings.log_level),
    )


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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:  # uvicorn's exit for a lifespan that did not start
            if not self.lifecycle.stopped_starting:
                raise
            logger.info("stopped during start-up, before serving")
            self.should_exit = True  # and `started` stays False: uvicorn neither serves nor shuts down

    async def on_tick(self, counter: int) -> bool:
        return await super().on_tick(counter) or self.lifecycle.finished()


def serve(lifecycle: Lifecycle, config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> int:
    """Run until drained or the engine died; returns the exit status. The drain did the waiting,
    so uvicorn's own graceful timeout only covers requests still open after it."""
    config.timeout_graceful_shutdown = GRACE_AFTER_DRAIN_S
    errors, quiet = logging.getLogger(UVICORN_ERRORS), _quiet_when_stopped_starting(lifecycle)
    errors.addFilter(quiet)
    try:
        DrainingServer(config, lifecycle).run(sockets=sockets)
    finally:
        errors.removeFilter(quiet)
    return lifecycle.exit_code


def _quiet_when_stopped_starting(lifecycle: Lifecycle) -> logging.Filter:
    """uvicorn's "startup failed" lines, with StartupStopped's traceback, are no failure here."""

    class Quiet(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not (lifecycle.stopped_starting and record.levelno >= logging.ERROR)

    return Quiet()


def exit_now(code: int) -> NoReturn:
    """End the process once uvicorn and the engine have stopped, without the interpreter's own
    teardown: collecting the modules of torch and vLLM took about 5 s on the CPU machine, all of it
    after the last request and the engine had ended, and pushed the exit past --shutdown-timeout + 2 s.
    Nothing is left to finalize: logs and stdio are flushed here, the engine's processes are gone."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
