"""A fleet on this machine for tests/multihost/test_fleet.py: Debian's redis-server, two replicas of
our server (each its own engine on the tiny model, one core each), and Debian's HAProxy with the
shipped deploy/haproxy/haproxy.cfg in front, all on 127.0.0.1 ports. Plus a client load that
records every request's outcome, and readers for what the balancer and the replicas saw."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server_process import ServerProcess, free_port, server_process
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
CHAT = "/v1/chat/completions"
# HAProxy's httplog: ".../srv_conn/retries srv_queue/backend_queue "request line"", retries > 0.
_REPLAYED = re.compile(r" \d+/\d+/\d+/\d+/\+?[1-9]\d* \d+/\d+ \"POST ")
SHUTDOWN_DELAY_S = 4.0  # above the shipped checks' inter x fall (1 s x 2) and one check's time
RPM = 4  # requests a minute of the key `rpm`
CONCURRENT = 2  # requests at once of the key `conc`
SECRETS = {"admin": "sk-fleet-admin", "rpm": "sk-fleet-rpm", "conc": "sk-fleet-conc"}
SECRETS |= {"usage": "sk-fleet-usage", "load": "sk-fleet-load"}
KEYS_FILE = f"""# the fleet test's keys: per-key limits on the key lines
admin:{SECRETS["admin"]}
rpm:{SECRETS["rpm"]} rpm={RPM}
conc:{SECRETS["conc"]} concurrent={CONCURRENT}
usage:{SECRETS["usage"]}
load:{SECRETS["load"]}
"""


def why_not() -> str | None:
    """Missing tools skip the tier on a developer's machine; under CI (CI=true) they fail it."""
    missing = [tool for tool in ("haproxy", "redis-server") if shutil.which(tool) is None]
    if not missing:
        return None
    message = f"{' and '.join(missing)} not installed (Debian: apt-get install haproxy redis-server)"
    if os.environ.get("CI"):
        pytest.fail(message)
    return message


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[key]}"}


class Balancer:
    """HAProxy in the foreground on the shipped config; its own log (health checks) in a file."""

    def __init__(self, replicas: list[str], directory: Path) -> None:
        binary = shutil.which("haproxy")
        assert binary is not None
        self.port, stats_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stats = f"http://127.0.0.1:{stats_port}/stats;csv"
        env = {
            "MIXTRAL_REPLICA_1": replicas[0],
            "MIXTRAL_REPLICA_2": replicas[1],
            "MIXTRAL_BALANCER_BIND": f"127.0.0.1:{self.port}",
            "MIXTRAL_BALANCER_STATS": f"127.0.0.1:{stats_port}",
        }
        self.log = directory / "haproxy.log"
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                [binary, "-db", "-f", str(HAPROXY_CFG)], stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )  # fmt: skip

    def states(self) -> dict[str, str]:
        """Each replica's state as the balancer has it (UP, DOWN, "UP 1/2", ...)."""
        text = httpx.get(self._stats, timeout=2).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            r["svname"]: r["status"]
            for r in rows
            if r["pxname"] == "replicas" and r["svname"].startswith("replica")
        }

    def wait_for(self, wanted: dict[str, str], timeout: float = 30) -> float:
        """Seconds until the states are as wanted."""
        start = time.monotonic()
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"haproxy exited {self._proc.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if all(self.states().get(name) == state for name, state in wanted.items()):
                    return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"balancer states {self.states()} not {wanted}:\n{self.log.read_text()}")
            time.sleep(0.05)

    def replayed(self) -> int:
        """Requests the balancer sent to a second replica: its log's retry count, `+` when redispatched."""
        return len(_REPLAYED.findall(self.log.read_text(errors="replace")))

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass
class Replica:
    """One replica: started (and restarted) on the same port, where the balancer expects it."""

    name: str
    core: int
    flags: tuple[str, ...]
    directory: Path
    port: int = field(default_factory=free_port)
    starts: int = 0
    _stack: contextlib.ExitStack | None = None
    server: ServerProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        self._stack = contextlib.ExitStack()
        env = {"VLLM_CPU_OMP_THREADS_BIND": str(self.core)}  # one core each: two engines on two cores
        self.server = self._stack.enter_context(
            server_process(*self.flags, log=self.log, env=env, port=self.port)
        )

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()

    def access_lines(self) -> list[dict[str, Any]]:
        """This start's access log lines (JSON), in the order written."""
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("logger") == "server.access":
                    lines.append(record)
        return lines

    def served(self, key: str) -> int:
        return sum(1 for r in self.access_lines() if r.get("api_key") == key and r.get("path") == CHAT)


def start_all(replicas: list[Replica]) -> None:
    """In parallel: two engine start-ups take about as long as one, each on its own core."""
    with ThreadPoolExecutor(len(replicas)) as pool:
        for done in [pool.submit(r.start) for r in replicas]:
            done.result()


@dataclass
class Outcome:
    start: float
    end: float
    stream: bool
    status: int | None  # None: no HTTP answer (connection reset, refused)
    ok: bool  # 200 and, for a stream, ended with [DONE] and no error event
    retry_after: str | None = None
    code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


async def request(
    http: httpx.AsyncClient, key: str, stream: bool, max_tokens: int, text: str = "Hi"
) -> Outcome:
    """One chat completion through `http`, never raising: what the client saw."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    body |= {"ignore_eos": True, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    start = time.monotonic()
    try:
        async with http.stream("POST", CHAT, json=body, headers=auth(key)) as resp:
            raw = (await resp.aread()).decode()
    except httpx.HTTPError:
        return Outcome(start, time.monotonic(), stream, None, False)
    out = Outcome(start, time.monotonic(), stream, resp.status_code, False, resp.headers.get("retry-after"))
    if resp.status_code != 200:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            out.code = json.loads(raw)["error"]["code"]
        return out
    events = [line[6:] for line in raw.splitlines() if line.startswith("data: ")] if stream else [raw]
    payloads = [json.loads(e) for e in events if e != "[DONE]"]
    usage = next((p["usage"] for p in reversed(payloads) if p.get("usage")), None)
    out.ok = usage is not None and not any("error" in p for p in payloads)
    out.ok = out.ok and (not stream or events[-1] == "[DONE]")
    if usage is not None:
        out.prompt_tokens, out.completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
    return out


async def load(url: str, key: str, seconds: float, workers: int, max_tokens: int = 24) -> list[Outcome]:
    """`workers` clients in a loop for `seconds`, half streaming; every request's outcome."""
    outcomes: list[Outcome] = []
    ends = time.monotonic() + seconds

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while time.monotonic() < ends:
                outcomes.append(await request(http, key, stream=index % 2 == 0, max_tokens=max_tokens))

    await asyncio.gather(*(worker(i) for i in range(workers)))
    return sorted(outcomes, key=lambda o: o.start)


def write_keys(directory: Path) -> Path:
    path = directory / "keys.txt"
    path.write_text(KEYS_FILE)
    return path


__all__ = ["Balancer", "RedisServer", "Replica"]
