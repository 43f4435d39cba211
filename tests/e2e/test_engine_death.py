"""When the real engine dies, /health says 503 and an open stream ends with an error event."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.server_process import running_server
from tests.helpers import sse_events

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def engine_core_pids(server_pid: int) -> list[int]:
    children = psutil.Process(server_pid).children(recursive=True)
    return [c.pid for c in children if "EngineCore" in " ".join(c.cmdline()) + c.name()]


def test_killed_engine_core_turns_health_503_and_ends_open_streams(tmp_path: Path) -> None:
    with running_server("--max-model-len", "1024", log=tmp_path / "server.log") as url:
        server_pid = next(
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if url.rsplit(":", 1)[1] in " ".join(p.info["cmdline"] or [])
        )
        [core] = engine_core_pids(server_pid)
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
        status = 200
        while time.monotonic() - killed_at < 5:
            status = httpx.get(f"{url}/health", timeout=5).status_code
            if status == 503:
                break
            time.sleep(0.05)
        assert status == 503
        assert time.monotonic() - killed_at < 5
        reader.join(timeout=30)
        assert not reader.is_alive(), (len(events), events[-3:])
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])
        assert set(error["error"]) == {"message", "type", "param", "code"}
        assert error["error"]["code"] == "engine_unavailable"
        resp = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert resp.status_code == 503
