"""`--api-server-count N`: N HTTP front-end processes (uvicorn + our app) sharing one engine core.

At high concurrency one Python process cannot keep up with HTTP, SSE framing and detokenization
for a fast engine; N processes can. This process becomes the supervisor: it reserves the port,
starts the engine core and the N front ends (server/engine/vllm_frontends.py), and serves nothing.

What must be global stays global:
- Connections: each front end listens on its own SO_REUSEPORT socket on the same port, and the
  kernel spreads new connections evenly over the listening ones. A front end listens only once its
  app is ready, so none is sent connections early.
- Warm-up: front end 0 runs it once; the others wait for it before they listen.
- The engine's fate: a front end cannot see the core die (it does not own it), so the supervisor
  sets `engine_gone` when any process of the group exits; and each engine step reaches one front
  end only, so the time of the last one is kept in `last_step`, shared, for the stall check.
- Metrics: prometheus-client's multiprocess mode. Each process writes its series to files in one
  directory; /metrics on any front end reads them all, so every scrape sees the whole server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from server.app import create_app
from server.config import Settings
from server.engine.base import FrontendLink
from server.frontend import Frontend
from server.http.deps import app_state
from server.observability import logs
from server.process.serve import exit_now, serve, uvicorn_config

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class _Payload:
    settings: Settings
    warmed: Any
    metrics_dir: str
    engine_gone: Any  # a multiprocessing Event
    last_step: Any  # a multiprocessing RawValue("d")


def reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve_multiprocess(settings: Settings, count: int) -> int:
    """Run the supervisor until a signal or until a process exits; returns the exit status."""
    from server.engine import run_frontends

    metrics_dir = tempfile.mkdtemp(prefix="mixtral-serve-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # read by prometheus-client at import in each front end
    # Bound, never listening: it holds the port (also a port-0 pick) and takes no connections.
    with closing(reuseport_socket(settings.host, settings.port)) as holder:
        port = holder.getsockname()[1]
        spawn = multiprocessing.get_context("spawn")
        engine_gone = spawn.Event()
        payload = _Payload(
            settings.model_copy(update={"port": port}),
            spawn.Event(),
            metrics_dir,
            engine_gone,
            spawn.RawValue("d", 0.0),
        )
        try:
            return run_frontends(
                settings, count, f"http://{settings.host}:{port}", run_frontend, payload, engine_gone
            )
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def run_frontend(_listen_address: str, _sock: Any, payload: _Payload, client_config: dict[str, Any]) -> None:
    """Entry point of one front-end process (spawned by the engine's process manager)."""
    settings = payload.settings
    logs.configure_for(settings)
    engine_config = dict(client_config)
    index, count = int(engine_config.pop("client_index")), int(engine_config.pop("client_count"))
    engine_config.pop("api_server_loads", None)  # vLLM's own accept balancing; SO_REUSEPORT does ours
    link = FrontendLink(index, count, engine_config, payload.engine_gone, payload.last_step)
    frontend = Frontend(link, payload.warmed, payload.metrics_dir)
    app = create_app(settings, frontend=frontend)
    sock = reuseport_socket(settings.host, settings.port)
    logger.info("front end %d of %d starting", index, count)
    # The supervisor's SIGTERM drains this process like a lone server; its exit, whatever the
    # status, makes the supervisor stop the rest and exit non-zero.
    exit_now(serve(app_state(app).lifecycle, uvicorn_config(app, settings), [sock]))
