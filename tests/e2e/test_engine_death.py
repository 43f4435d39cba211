"""When the real engine dies: every front end's /health says 503 within a second, every open stream
ends with an error event and [DONE], new requests get 503, and the server exits non-zero within
5 s with no process left, so that its supervisor starts a new one. With one process and with two
front ends (which do not own the engine core: the supervisor tells them). And the other way round:
a server killed outright does not leave its engine core running."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.process_group import (
    all_processes,
    clients_on_every_front_end,
    engine_core_pids,
    front_end_pids,
    leftovers,
    seconds_until_503,
    streams_on_every_front_end,
)
from tests.e2e.server_process import server_process

logger = logging.getLogger(__name__)
EXIT_WITHIN_S = 15
HEALTH_503_WITHIN_S = 1.0  # the README's promise
SERVER_EXIT_WITHIN_S = 5.0
# Long enough to be still streaming when the engine is killed, on a slow shared CPU too.
MAX_TOKENS = 900


@pytest.mark.parametrize("front_ends", [1, 2], ids=["one-process", "two-front-ends"])
def test_killed_engine_core_turns_health_503_ends_open_streams_and_exits_non_zero(
    tmp_path: Path, front_ends: int
) -> None:
    flags = ("--max-model-len", "1024", "--api-server-count", str(front_ends))
    with server_process(*flags, log=tmp_path / "server.log") as server:
        [core] = engine_core_pids(server.proc.pid)
        pids = front_end_pids(server, front_ends)
        assert len(pids) == front_ends
        probes = clients_on_every_front_end(server, pids)
        streams = streams_on_every_front_end(server, pids, MAX_TOKENS)
        processes = all_processes(server)
        os.kill(core, signal.SIGKILL)
        killed_at = time.monotonic()
        health_503 = {pid: seconds_until_503(http, killed_at, within=5) for pid, http in probes.items()}
        for http in probes.values():
            assert http.get("/ready").status_code == 503
        with httpx.Client(base_url=server.url, timeout=5) as http:
            resp = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "engine_unavailable"
        for stream in streams.values():
            stream.join(timeout=30)
        code = server.proc.wait(timeout=EXIT_WITHIN_S)
        exited_after = time.monotonic() - killed_at
        gone_after, left = leftovers(processes, since=killed_at)
    streams_ended = {pid: s.ended_at - killed_at for pid, s in streams.items() if s.ended_at}
    logger.info(
        "%d front end(s): health 503 after %s s; streams ended after %s s; exit %d after %.1f s; "
        "all gone after %.1f s",
        front_ends,
        {pid: round(t, 2) for pid, t in health_503.items()},
        {pid: round(t, 2) for pid, t in streams_ended.items()},
        code,
        exited_after,
        gone_after,
    )
    for pid, stream in streams.items():  # one stream on each front end
        error = stream.error_event
        assert error is not None, (pid, stream.error, stream.events[-3:])
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "engine_unavailable"
    assert max(health_503.values()) < HEALTH_503_WITHIN_S, health_503
    assert code == 1
    assert exited_after < SERVER_EXIT_WITHIN_S
    assert not left


def test_sigkilled_server_leaves_no_engine_core_behind(tmp_path: Path) -> None:
    with server_process("--max-model-len", "1024", log=tmp_path / "server.log") as server:
        assert engine_core_pids(server.proc.pid)
        children = psutil.Process(server.proc.pid).children(recursive=True)  # the core's workers too
        server.proc.kill()
        server.proc.wait()
        killed_at = time.monotonic()
        gone, alive = psutil.wait_procs(children, timeout=EXIT_WITHIN_S)
        for orphan in alive:  # do not leave them to the next test either
            orphan.kill()
    after = time.monotonic() - killed_at
    logger.info("%d child processes gone %.1f s after their server was killed", len(gone), after)
    assert not alive, [p.pid for p in alive]
