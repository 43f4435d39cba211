"""One engine over two hosts: the tiny model's two layers split by pipeline parallelism over two
network namespaces (tests/multihost/hosts.py), with vLLM's multi-node mp executor: node 0 runs
our server, node 1 runs `--headless`. The answer must be one host's, token for token.

Both runs are float32: the two stages run the same kernels on the same shapes as one host, so the
split changes no arithmetic, only where the hidden states are (they cross the veth pair between
the layers).

Not Ray: vLLM 0.32's CPU platform has no Ray support (deploy/multi-node.md, bench/studies/multihost).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import cache_dir
from tests.e2e.server_process import running_server
from tests.helpers import chat, sse_events
from tests.multihost.hosts import (
    HOST_A,
    HOST_B,
    Host,
    pids,
    sent_bytes,
    start_on,
    stop,
    two_hosts,
    wait_gone,
    why_not,
)

pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))

PROMPTS = ["Hello there", "Grüße aus Köln, 你好"]
MAX_TOKENS = 16
LOGPROB_TOL = 1e-4
HIDDEN_BYTES = 256 * 4  # one token's hidden state between the layers: the tiny model's width, float32
PORT = 8000  # inside host A's namespace nothing else listens
READY_TIMEOUT_S = 300
ENGINE_FLAGS = (
    "--dtype", "float32",
    "--max-model-len", "1024",
    "--kv-cache-memory-bytes", str(256 << 20),
    "--cache-dir", str(cache_dir()),
)  # fmt: skip
NODES_FLAGS = ("--pipeline-parallel-size", "2", "--nnodes", "2", "--master-addr", HOST_A.addr)


def _env(host: Host, core: int) -> dict[str, str]:
    """Gloo and vLLM must use the link between the hosts; each host gets one of the two cores."""
    return {
        "GLOO_SOCKET_IFNAME": host.ifname,
        "VLLM_HOST_IP": host.addr,
        "VLLM_CPU_OMP_THREADS_BIND": str(core),
    }


@contextlib.contextmanager
def engine_over_two_hosts(tmp_path: Path) -> Iterator[str]:
    """Node 1 headless on host B, node 0 serving on host A; yields node 0's URL. At the end both are
    stopped as an operator would (SIGTERM), and neither host may keep a process."""
    server = [sys.executable, "-m", "server", *ENGINE_FLAGS, *NODES_FLAGS]
    with two_hosts():
        worker = start_on(
            HOST_B, [*server, "--node-rank", "1", "--headless"], tmp_path / "b.log", _env(HOST_B, 1)
        )
        head = start_on(
            HOST_A,
            [*server, "--node-rank", "0", "--host", "0.0.0.0", "--port", str(PORT)],
            tmp_path / "a.log",
            _env(HOST_A, 0),
        )
        url = f"http://{HOST_A.client_addr}:{PORT}"
        try:
            _wait_ready(url, head, worker, tmp_path)
            yield url
        finally:
            head_status = stop(head, signal.SIGTERM, timeout=60)
            worker_status = stop(worker, signal.SIGTERM, timeout=60)
            left = {h.netns: wait_gone(h, timeout=30) for h in (HOST_A, HOST_B)}
        assert head_status == 0, (tmp_path / "a.log").read_text()[-3000:]
        assert worker_status == 0, (tmp_path / "b.log").read_text()[-3000:]
        assert left == {HOST_A.netns: [], HOST_B.netns: []}, left


def _wait_ready(url: str, head: Any, worker: Any, tmp_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        for proc, name in ((head, "a"), (worker, "b")):
            if proc.poll() is not None:
                raise RuntimeError(f"host {name} exited with {proc.returncode}:\n{_logs(tmp_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not healthy in {READY_TIMEOUT_S}s:\n{_logs(tmp_path)}")
        time.sleep(1)


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("*.log")))


def _greedy(url: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per prompt: the answer and its tokens' logprob entries."""
    runs = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for prompt in PROMPTS:
            body = chat(prompt, max_tokens=MAX_TOKENS, temperature=0, logprobs=True, top_logprobs=1)
            resp = http.post("/v1/chat/completions", json=body)
            assert resp.status_code == 200, resp.text
            choice = resp.json()["choices"][0]
            runs.append((choice["message"]["content"], choice["logprobs"]["content"]))
    return runs


def _streamed_text(url: str, prompt: str) -> tuple[str, int]:
    body = chat(prompt, max_tokens=MAX_TOKENS, temperature=0, stream=True)
    with (
        httpx.Client(base_url=url, timeout=120) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        assert r.status_code == 200, r.read()
        events = sse_events(r.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e)["choices"] for e in events[:-1]]
    text = "".join(c[0]["delta"].get("content") or "" for c in chunks if c)
    return text, len(chunks)


def test_pipeline_over_two_hosts_answers_as_one_host(tmp_path: Path) -> None:
    with running_server(
        "--dtype", "float32", "--max-model-len", "1024", log=tmp_path / "one-host.log"
    ) as url:
        one_host = _greedy(url)

    with engine_over_two_hosts(tmp_path) as url:
        head_log = (tmp_path / "a.log").read_text()
        before = sent_bytes(HOST_A)
        two_hosts_runs = _greedy(url)
        crossed = sent_bytes(HOST_A) - before
        streamed, chunk_count = _streamed_text(url, PROMPTS[0])
        assert pids(HOST_B), "node 1's ranks run on host B"
    assert "pipeline_parallel_size=2" in head_log, head_log[-3000:]
    # Every generated token's hidden state went from host A's layer to host B's over the link.
    assert crossed > len(PROMPTS) * MAX_TOKENS * HIDDEN_BYTES, crossed

    for prompt, (text_a, a), (text_b, b) in zip(PROMPTS, one_host, two_hosts_runs, strict=True):
        assert len(a) == MAX_TOKENS, prompt
        assert (text_b, [t["token"] for t in b]) == (text_a, [t["token"] for t in a]), prompt
        assert all(abs(x["logprob"] - y["logprob"]) < LOGPROB_TOL for x, y in zip(a, b, strict=True)), prompt
    assert streamed == one_host[0][0]
    assert chunk_count > MAX_TOKENS // 2  # token by token, not one block at the end
