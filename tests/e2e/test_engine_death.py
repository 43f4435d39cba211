"""When the real engine dies: /health says 503 within a second, an open stream ends with an error
event, and the server exits non-zero so that its supervisor starts a new one. And the other way
round: a server killed outright does not leave its engine core running."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.e2e.server_process import server_process
from tests.helpers import sse_events

logger = logging.getLogger(__name__)
EXIT_WITHIN_S = 15


def engine_core_pids(server_pid: int) -> list[int]:
    children = psutil.Process(server_pid).children(recursive=True)
    return [c.pid for c in children if "EngineCore" in " ".join(c.cmdline()) + c.name()]


def test_killed_engine_core_turns_health_503_ends_open_streams_and_exits_non_zero(tmp_path: Path) -> None:
    with server_process("--max-model-len", "1024", log=tmp_path / "server.log") as server:
        url = server.url
        [core] = engine_core_pids(server.proc.pid)
        events: list[str] = []
        started = threading.Event()

        def stream() -> None:
            body = {
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 900,
                "ignore_eos": True,
                "stream": True,
            }
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as resp:
                for line in resp.iter_lines():
                    events.extend(sse_events(line))
                    started.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(30)
        os.kill(core, signal.SIGKILL)
        killed_at = time.monotonic()
        with httpx.Client(base_url=url, timeout=5) as http:
            while (status := http.get("/health").status_code) != 503 and time.monotonic() - killed_at < 5:
                time.sleep(0.02)
            health_503_after = time.monotonic() - killed_at
            assert status == 503
            resp = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
            assert resp.status_code == 503
            assert resp.json()["error"]["code"] == "engine_unavailable"
        reader.join(timeout=30)
        assert not reader.is_alive(), (len(events), events[-3:])
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])
        assert set(error["error"]) == {"message", "type", "param", "code"}
        assert error["error"]["code"] == "engine_unavailable"
        code = server.proc.wait(timeout=EXIT_WITHIN_S)
        exited_after = time.monotonic() - killed_at
    logger.info("health 503 after %.0f ms; exit %d after %.1f s", health_503_after * 1000, code, exited_after)
    assert health_503_after < 1.0
    assert code == 1


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
