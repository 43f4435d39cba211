"""The processes of a running server, and connections pinned to each of its front ends.

With `--api-server-count N` the kernel spreads new connections over the front ends
(SO_REUSEPORT), so a test cannot choose one; it opens connections until every front end holds at
least one, telling them apart by the front end's end of the TCP connection (psutil)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import httpx
import psutil

from tests.e2e.server_process import ServerProcess
from tests.helpers import chat, sse_events

MAX_CONNECTIONS = 16  # 2 front ends: all on one after 16 tries has odds 2 ** -15


def port_of(server: ServerProcess) -> int:
    return int(server.url.rpartition(":")[2])


def engine_core_pids(server_pid: int) -> list[int]:
    children = psutil.Process(server_pid).children(recursive=True)
    return [c.pid for c in children if "EngineCore" in " ".join(c.cmdline()) + c.name()]


def front_end_pids(server: ServerProcess, expected: int, within: float = 60.0) -> list[int]:
    """The processes listening on the server's port: the server itself, or its front ends. The
    server is ready once one front end answers, so wait (up to `within` s) for all `expected`."""
    port = port_of(server)
    deadline = time.monotonic() + within
    while True:
        procs = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children()]
        pids = [
            p.pid
            for p in procs
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp"))
        ]
        if len(pids) >= expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def owner(front_ends: list[int], port: int, client_port: int) -> int | None:
    """The front end holding the connection from `client_port`."""
    for pid in front_ends:
        for c in psutil.Process(pid).net_connections("tcp"):
            if c.laddr.port == port and c.raddr and c.raddr.port == client_port:
                return pid
    return None


def client_port(resp: httpx.Response) -> int:
    port: int = resp.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


class Stream(threading.Thread):
    """One streamed chat completion on its own connection, read to its end in a thread."""

    def __init__(self, url: str, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.url, self.max_tokens = url, max_tokens
        self.events: list[str] = []
        self.started = threading.Event()
        self.port: int | None = None
        self.ended_at: float | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        body = chat("Tell me a story.", max_tokens=self.max_tokens, ignore_eos=True, stream=True)
        try:
            with httpx.stream("POST", f"{self.url}/v1/chat/completions", json=body, timeout=60) as resp:
                self.port = client_port(resp)
                for line in resp.iter_lines():
                    self.events.extend(sse_events(line))
                    self.started.set()
        except httpx.HTTPError as exc:  # a front end killed outright resets its connections
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.started.set()

    @property
    def error_event(self) -> dict[str, Any] | None:
        """The error of a stream that ended with an error event and [DONE]."""
        if len(self.events) < 2 or self.events[-1] != "[DONE]":
            return None
        last: dict[str, Any] = json.loads(self.events[-2])
        return last.get("error")


def streams_on_every_front_end(
    server: ServerProcess, front_ends: list[int], max_tokens: int
) -> dict[int, Stream]:
    """Open streams until every front end has one that has started; one stream per front end."""
    port = port_of(server)
    found: dict[int, Stream] = {}
    for _ in range(MAX_CONNECTIONS):
        stream = Stream(server.url, max_tokens)
        stream.start()
        assert stream.started.wait(60) and stream.port is not None, stream.error
        pid = owner(front_ends, port, stream.port)
        if pid is not None:
            found.setdefault(pid, stream)
        if len(found) == len(front_ends):
            return found
    raise AssertionError(f"streams reached {sorted(found)} of {front_ends}")


def clients_on_every_front_end(server: ServerProcess, front_ends: list[int]) -> dict[int, httpx.Client]:
    """A kept-alive connection to each front end (its /health is then that front end's)."""
    port = port_of(server)
    found: dict[int, httpx.Client] = {}
    for _ in range(MAX_CONNECTIONS):
        http = httpx.Client(base_url=server.url, timeout=5)
        resp = http.get("/health")
        pid = owner(front_ends, port, client_port(resp))
        if pid is None or pid in found:
            http.close()
        else:
            found[pid] = http
        if len(found) == len(front_ends):
            return found
    raise AssertionError(f"connections reached {sorted(found)} of {front_ends}")


def seconds_until_503(http: httpx.Client, since: float, within: float) -> float:
    while True:
        try:
            if http.get("/health").status_code == 503:
                return time.monotonic() - since
        except httpx.HTTPError:  # the process has gone already: later than asked for
            return float("inf")
        if time.monotonic() - since > within:
            return float("inf")
        time.sleep(0.02)


def all_processes(server: ServerProcess) -> list[psutil.Process]:
    return [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]


# A vLLM worker whose engine core was killed is told by the kernel (PR_SET_PDEATHSIG, see
# server/process/orphans.py) and by vLLM's own pipe, and still takes about 14 s to end (CPU engine).
ALL_GONE_WITHIN_S = 30


def leftovers(processes: list[psutil.Process], since: float) -> tuple[float, list[str]]:
    """Seconds from `since` until every process had ended, and those still alive after
    ALL_GONE_WITHIN_S (killed then, not left to other tests)."""
    _, alive = psutil.wait_procs(processes, timeout=max(0.0, since + ALL_GONE_WITHIN_S - time.monotonic()))
    gone_after = time.monotonic() - since
    named = []
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            named.append(f"{proc.pid} {proc.name()} {' '.join(proc.cmdline())[:120]}")
            proc.kill()
    return gone_after, named
