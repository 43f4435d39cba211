"""Start `mixtral-serve` as a real subprocess on a free port and wait until it is healthy."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import cache_dir

READY_TIMEOUT_S = 300


# Below Linux's ephemeral range (32768-60999): a port the kernel handed out for port 0 is free now,
# but the server binds it only after its engine has started, and in those seconds the engine's own
# outgoing connections may be given the same number (seen once: "address already in use").
PORTS = range(20000, 32000)


def free_port() -> int:
    while True:
        port = random.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass(frozen=True)
class ServerProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def running_server(*flags: str, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Yields the base URL. The server's output goes to `log` (shown when it fails to start)."""
    with server_process(*flags, log=log, env=env) as server:
        yield server.url


@contextlib.contextmanager
def server_process(
    *flags: str, log: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[ServerProcess]:
    """Like running_server, for tests that signal the process or read its exit status; stops it
    at the end unless it has exited already. `port`: a given one (a replica restarted where its
    load balancer expects it); default: a free one."""
    port = port or free_port()
    cmd = [
        sys.executable, "-m", "server",
        "--port", str(port),
        "--cache-dir", str(cache_dir()),
        "--kv-cache-memory-bytes", str(256 << 20),
        *flags,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mixtral-serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mixtral-serve not healthy in {READY_TIMEOUT_S}s:\n{log.read_text()[-4000:]}"
                )
            time.sleep(1)
        yield ServerProcess(url, proc, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# The layout servers that the load-fault and front-end tests share (tests/e2e/conftest.py): small
# limits keep the fault tests cheap; the drain test ends each one, last.
MAX_IN_FLIGHT = 32  # admission's cap; the engine's batch (128 on CPU) runs all that is admitted at once
SHUTDOWN_TIMEOUT_S = 30  # far longer than the drain's streams need: the drain must not cut them
# The other e2e tests' context length: vLLM keys its compile cache on it, so the start-up reuses theirs.
MAX_MODEL_LEN = 1024
LAYOUT_FLAGS = (
    "--max-model-len", str(MAX_MODEL_LEN),
    "--max-in-flight", str(MAX_IN_FLIGHT),
    "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_S),
)  # fmt: skip


def layout_server(front_ends: int, log: Path) -> contextlib.AbstractContextManager[ServerProcess]:
    return server_process(*LAYOUT_FLAGS, "--api-server-count", str(front_ends), log=log)
