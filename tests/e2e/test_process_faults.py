"""Faults of the processes other than the engine's death (tests/e2e/test_engine_death.py): a front
end killed outright, a hung engine core, and a stop signal during the start-up. Each with the
figures an operator would ask for, logged, and no process left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import cache_dir
from tests.e2e.process_group import (
    all_processes,
    clients_on_every_front_end,
    engine_core_pids,
    front_end_pids,
    leftovers,
    seconds_until_503,
    streams_on_every_front_end,
)
from tests.e2e.server_process import free_port, server_process

logger = logging.getLogger(__name__)
SERVER_EXIT_WITHIN_S = 5.0
# Still streaming when the fault comes: 900 tokens took 3.0 s on an Intel CPU with AMX, and once
# ended just before the fault did; this is minutes of streaming on any CPU here.
MAX_MODEL_LEN = 4096
MAX_TOKENS = 3900
STALL_TIMEOUT_S = 2.0
STARTUP_STOP_WITHIN_S = 15.0  # small, so the test is quick; the default (60 s) only waits longer


def test_a_killed_front_end_stops_the_server_fast_and_ends_the_other_front_ends_streams(
    tmp_path: Path,
) -> None:
    flags = ("--max-model-len", str(MAX_MODEL_LEN), "--api-server-count", "2", "--shutdown-timeout", "30")
    with server_process(*flags, log=tmp_path / "server.log") as server:
        pids = front_end_pids(server, 2)
        streams = streams_on_every_front_end(server, pids, MAX_TOKENS)
        processes = all_processes(server)
        victim, survivor = pids
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        code = server.proc.wait(timeout=30)
        exited_after = time.monotonic() - killed_at
        for stream in streams.values():
            stream.join(timeout=10)
        gone_after, left = leftovers(processes, since=killed_at)
    other = streams[survivor]
    logger.info(
        "front end killed: the other stream ended after %.2f s; exit %d after %.1f s; all gone after %.1f s",
        (other.ended_at or float("inf")) - killed_at,
        code,
        exited_after,
        gone_after,
    )
    assert streams[victim].error is not None or streams[victim].events[-1:] != ["[DONE]"]  # reset
    error = other.error_event  # the other front end's stream was ended, not cut
    assert error is not None, (other.error, other.events[-3:])
    assert error["code"] == "engine_unavailable"
    assert code == 1
    assert exited_after < SERVER_EXIT_WITHIN_S  # not --shutdown-timeout (30 s)
    assert not left


@pytest.mark.parametrize("front_ends", [1, 2], ids=["one-process", "two-front-ends"])
def test_a_stopped_engine_core_is_found_hung_turns_health_503_and_the_server_exits_1(
    tmp_path: Path, front_ends: int
) -> None:
    flags = (
        "--max-model-len", str(MAX_MODEL_LEN),
        "--api-server-count", str(front_ends),
        "--engine-stall-timeout", str(STALL_TIMEOUT_S),
    )  # fmt: skip
    with server_process(*flags, log=tmp_path / "server.log") as server:
        [core] = engine_core_pids(server.proc.pid)
        pids = front_end_pids(server, front_ends)
        probes = clients_on_every_front_end(server, pids)
        streams = streams_on_every_front_end(server, pids, MAX_TOKENS)
        processes = all_processes(server)
        try:
            os.kill(core, signal.SIGSTOP)
            stopped_at = time.monotonic()
            # Every front end with a stream open finds the engine hung after the stall timeout.
            health_503 = {
                pid: seconds_until_503(http, stopped_at, within=STALL_TIMEOUT_S + 5)
                for pid, http in probes.items()
            }
            for stream in streams.values():
                stream.join(timeout=30)
            code = server.proc.wait(timeout=60)
            exited_after = time.monotonic() - stopped_at
            gone_after, left = leftovers(processes, since=stopped_at)
        finally:
            with contextlib.suppress(ProcessLookupError):  # gone, as it should be; else not left behind
                os.kill(core, signal.SIGKILL)
    logger.info(
        "%d front end(s), engine stopped: health 503 after %s s (stall timeout %.0f s); exit %d after %.1f s;"
        " all gone after %.1f s",
        front_ends,
        {pid: round(t, 2) for pid, t in health_503.items()},
        STALL_TIMEOUT_S,
        code,
        exited_after,
        gone_after,
    )
    for stream in streams.values():
        error = stream.error_event
        assert error is not None, (stream.error, stream.events[-3:])
        assert error["code"] == "engine_unavailable"
    # Counted from the last step, which came just before the SIGSTOP.
    assert all(STALL_TIMEOUT_S - 0.5 <= t < STALL_TIMEOUT_S + 1.5 for t in health_503.values()), health_503
    assert code == 1
    assert not left


def _refused_throughout(port: int, stop: threading.Event, answered: list[float]) -> None:
    while not stop.is_set():
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(0.5)
            s.connect(("127.0.0.1", port))
            answered.append(time.monotonic())
        time.sleep(0.05)


@pytest.mark.parametrize("front_ends", [1, 2], ids=["one-process", "two-front-ends"])
def test_sigterm_during_the_warm_up_stops_at_once_exits_0_and_never_listens(
    tmp_path: Path, front_ends: int
) -> None:
    log = tmp_path / "server.log"
    port = free_port()
    cmd = [
        sys.executable, "-m", "server",
        "--port", str(port),
        "--cache-dir", str(cache_dir()),
        "--kv-cache-memory-bytes", str(256 << 20),
        # A long context: many warm-up prompt sizes, so the warm-up outlasts the check below by far.
        "--max-model-len", "8192",
        "--api-server-count", str(front_ends),
    ]  # fmt: skip
    stop, answered = threading.Event(), []
    prober = threading.Thread(target=_refused_throughout, args=(port, stop, answered), daemon=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        prober.start()
        deadline = time.monotonic() + 300
        while "warming the engine up" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        processes = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = proc.wait(timeout=60)
        exited_after = time.monotonic() - signalled
        gone_after, left = leftovers(processes, since=signalled)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    logger.info(
        "%d front end(s): SIGTERM during the warm-up: exit %d after %.1f s", front_ends, code, exited_after
    )
    assert code == 0, text[-3000:]
    # The start-up is cut at once (in the log: within 0.1 s); the rest is the engine's own stop, where
    # vLLM waits 5 s for its CPU worker before it kills it, and the processes' exit.
    assert exited_after < STARTUP_STOP_WITHIN_S, text[-3000:]
    assert "warm-up: " not in text  # it was cut short, not waited for
    assert not answered  # never listening
    assert "Traceback" not in text, text[-3000:]
    assert not left
