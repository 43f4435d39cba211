"""Front-end CPU cost per streamed token.

Loads a running server with concurrent streaming requests and reads the CPU time of the server
process itself (the one running uvicorn and vLLM's AsyncLLM client; its EngineCore child is counted
apart) around each round. Optionally records a py-spy profile of the front end during one more round
and sums its samples by frame, by package and by area (our code, pydantic, vLLM's output path, ...).

    python -m server --port 8123 &
    python bench/tools/frontend_profile.py --url http://127.0.0.1:8123 --rounds 5 \
        --profile OUT_DIR --gil --out OUT_DIR/result.json

The server process is the one listening on --url's port unless --pid says otherwise. With many fast
streams (a GPU engine), one Python client cannot read them all: --clients N spreads the streams over
N client processes. Writes JSON (--out) and a markdown table on stdout. Needs httpx and psutil;
py-spy for --profile. bench/results/2026-11-23-frontend-profile/README.md shows a use.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import multiprocessing
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

logger = logging.getLogger("frontend_profile")

PROMPT = "Write a long story about a lighthouse keeper and the sea."


@dataclass
class Round:
    requests: int = 0
    completion_tokens: int = 0
    events: int = 0
    body_bytes: int = 0
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    engine_cpu_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def cpu_us_per_token(self) -> float:
        return 1e6 * self.server_cpu_s / max(1, self.completion_tokens)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "frontend_cpu_us_per_token": round(self.cpu_us_per_token, 1),
            "client_tokens_per_s": round(self.tokens_per_s, 1),
            "frontend_cpu_util": round(self.server_cpu_s / self.wall_s, 3) if self.wall_s else 0.0,
        }


def request_body(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    common = {
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if args.endpoint == "completions":
        return "/v1/completions", {"prompt": PROMPT, **common}
    return "/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT}], **common}


def parse_stream(raw: bytes) -> tuple[int, int]:
    """(events, completion tokens from the usage chunk) of one SSE body; checks it ended with [DONE]."""
    events = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
    if not events or events[-1] != b"[DONE]":
        raise ValueError("stream did not end with [DONE]")
    usage = json.loads(events[-2]).get("usage")
    if not usage:
        raise ValueError("no usage chunk")
    return len(events), int(usage["completion_tokens"])


async def one_stream(client: httpx.AsyncClient, path: str, body: dict[str, Any], result: Round) -> None:
    parts: list[bytes] = []
    async with client.stream("POST", path, json=body) as resp:
        if resp.status_code != 200:
            result.failures.append(f"{resp.status_code}: {(await resp.aread())[:200]!r}")
            return
        async for part in resp.aiter_raw():
            parts.append(part)
    raw = b"".join(parts)
    events, tokens = parse_stream(raw)
    result.requests += 1
    result.events += events
    result.completion_tokens += tokens
    result.body_bytes += len(raw)


def cpu_seconds(proc: psutil.Process) -> tuple[float, float]:
    """(this process, its descendants): user + system seconds, read live from /proc."""
    own = proc.cpu_times()
    children = 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        children += t.user + t.system
    return own.user + own.system, children


async def load(args: argparse.Namespace, streams: int, requests: int) -> Round:
    """`requests` streams, at most `streams` at a time, from this process."""
    path, body = request_body(args)
    result = Round()
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    gate = asyncio.Semaphore(streams)

    async def gated(client: httpx.AsyncClient) -> None:
        async with gate:
            try:
                await one_stream(client, path, body, result)
            except (httpx.HTTPError, ValueError) as exc:
                result.failures.append(f"{type(exc).__name__}: {exc}")

    async with httpx.AsyncClient(base_url=args.url, limits=limits, timeout=600) as client:
        await asyncio.gather(*(gated(client) for _ in range(requests)))
    return result


def load_in_process(args: argparse.Namespace, streams: int, requests: int) -> dict[str, Any]:
    """One client process's share (--clients > 1: one Python client cannot read 256 fast streams)."""
    return asdict(asyncio.run(load(args, streams, requests)))


def shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_round(args: argparse.Namespace, proc: psutil.Process, pool: Executor | None) -> Round:
    requests = args.requests or args.concurrency
    cpu0, eng0 = cpu_seconds(proc)
    start = time.perf_counter()
    if pool is None:
        result = asyncio.run(load(args, args.concurrency, requests))
    else:
        jobs = zip(shares(args.concurrency, args.clients), shares(requests, args.clients), strict=True)
        parts = [pool.submit(load_in_process, args, s, r) for s, r in jobs]
        result = merge([Round(**f.result()) for f in parts])
    result.wall_s = time.perf_counter() - start
    cpu1, eng1 = cpu_seconds(proc)
    result.server_cpu_s = cpu1 - cpu0
    result.engine_cpu_s = eng1 - eng0
    return result


def merge(parts: list[Round]) -> Round:
    total = Round()
    for part in parts:
        total.requests += part.requests
        total.completion_tokens += part.completion_tokens
        total.events += part.events
        total.body_bytes += part.body_bytes
        total.failures += part.failures
    return total


# --- py-spy ----------------------------------------------------------------------------------------

AREAS = (  # py-spy names files relative to their sys.path entry: "(pydantic/main.py:280)"
    (
        "our openai/bodies/ + http/streaming.py + engine/fanout.py",
        r"\(server/(openai/bodies/|http/streaming\.py|engine/fanout\.py)",
    ),
    ("pydantic", r"\(pydantic(_core)?/"),
    ("sse-starlette", r"\(sse_starlette/"),
    ("json (stdlib)", r"\(json/"),
    ("vLLM output processor + detokenizer", r"\(vllm/v1/engine/(output_processor|detokenizer)"),
    ("vLLM AsyncLLM output handler (all of it)", r"AsyncLLM\._run_output_handler"),
    ("uvicorn HTTP protocol", r"\(uvicorn/protocols/"),
    ("starlette / fastapi", r"\((starlette|fastapi)/"),
    ("anyio", r"\(anyio/"),
    ("our engine/vllm*.py", r"\(server/engine/"),
    ("metrics", r"\(server/observability/metrics\.py|\(prometheus_client/"),
    ("other threads (thread pool, vLLM helpers)", r"^_bootstrap \(threading\.py"),
)

# Leaves where a thread waits rather than works. py-spy cannot tell idle from busy here (no idle flag
# in this container), and uvloop's C loop shows as its Python caller, so time in epoll_wait lands on
# `Runner.run`. Those samples are dropped; the C work of the loop itself (socket writes) goes with them.
IDLE_LEAVES = ("Runner.run (asyncio/runners.py", "Condition.wait (threading.py", "select (selectors.py")

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def record_profile(pid: int, out: Path, rate: int, gil: bool) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking"]
    cmd += ["--format", "raw", "--output", str(out), *(["--gil"] if gil else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attach before the load starts
    return proc


def stop_profile(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode not in (0, -signal.SIGINT):
        logger.warning("py-spy exited %s: %s", proc.returncode, err.decode(errors="replace")[-500:])


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    return f"{m.group('func')} ({m.group('file')})"


def _package(frame: str) -> str:
    """Who owns a frame: its file's top-level package, or server's layer (`server/http`, ...)."""
    m = _FRAME.match(frame)
    parts = (m.group("file") if m else frame).split("/")
    if parts[0] == "server":
        return "/".join(parts[:2])
    return "stdlib (frozen)" if parts[0].startswith("<frozen") else parts[0].removesuffix(".py")


def summarize_profile(raw: Path, top: int) -> dict[str, Any]:
    """Self samples by leaf frame and by the leaf's package (these add up to 100%), and inclusive
    samples by frame and by area (a sample counts once per frame or area it passes through)."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    total = idle_samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or not count_text.isdigit() or any(idle in frames[-1] for idle in IDLE_LEAVES):
            idle_samples += int(count_text) if count_text.isdigit() else 0
            continue
        count = int(count_text)
        total += count
        counts["self"][_short(frames[-1])] += count
        counts["self_package"][_package(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            counts["inclusive"][name] += count
        for name in (name for name, pattern in AREAS if re.search(pattern, stack)):
            counts["area"][name] += count
    pct = 100.0 / max(1, total)

    def ranked(kind: str, n: int) -> list[tuple[str, float]]:
        return [(f, round(c * pct, 1)) for f, c in counts[kind].most_common(n)]

    return {
        "samples": total,
        "idle_samples_dropped": idle_samples,
        "self_top": ranked("self", top),
        "self_by_package": ranked("self_package", 20),
        "inclusive_top": ranked("inclusive", top + 10),
        "areas_inclusive": [(a, round(counts["area"][a] * pct, 1)) for a, _ in AREAS],
    }


# --- report ----------------------------------------------------------------------------------------


def table(rounds: list[Round]) -> str:
    head = "| round | tokens | wall s | client tok/s | front-end CPU s | CPU us/token | engine CPU s |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"| {i} | {r.completion_tokens} | {r.wall_s:.2f} | {r.tokens_per_s:.0f} | "
            f"{r.server_cpu_s:.2f} | {r.cpu_us_per_token:.1f} | {r.engine_cpu_s:.2f} |"
        )
    per_token = [r.cpu_us_per_token for r in rounds]
    if per_token:
        lines.append(
            f"\nCPU us/token: median {statistics.median(per_token):.1f}, "
            f"range {min(per_token):.1f}-{max(per_token):.1f} over {len(per_token)} rounds"
        )
    return "\n".join(lines)


def profile_table(summary: dict[str, Any]) -> str:
    lines = [
        f"\npy-spy: {summary['samples']} busy samples ({summary['idle_samples_dropped']} idle dropped)",
        "",
        "| self % | frame |",
        "|---|---|",
    ]
    lines += [f"| {p} | `{f}` |" for f, p in summary["self_top"]]
    lines += ["", "| self % | package of the leaf frame |", "|---|---|"]
    lines += [f"| {p} | {f} |" for f, p in summary["self_by_package"]]
    lines += ["", "| inclusive % | frame |", "|---|---|"]
    lines += [f"| {p} | `{f}` |" for f, p in summary["inclusive_top"]]
    lines += ["", "| inclusive % | area |", "|---|---|"]
    lines += [f"| {p} | {a} |" for a, p in summary["areas_inclusive"]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8123")
    p.add_argument("--pid", type=int, help="the server (front-end) process; default: the one on --url's port")
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--clients", type=int, default=1, help="client processes sharing the streams")
    p.add_argument("--requests", type=int, default=0, help="per round; default: one per stream slot")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first")
    p.add_argument("--profile", type=Path, help="folder for one more round under py-spy (raw stacks)")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL (where py-spy cannot tell idle threads from busy ones)",
    )
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path, help="JSON result")
    return p.parse_args(argv)


def profiled_round(args: argparse.Namespace, proc: psutil.Process, pool: Executor | None) -> dict[str, Any]:
    args.profile.mkdir(parents=True, exist_ok=True)
    raw = args.profile / f"pyspy-{args.endpoint}.txt"
    spy = record_profile(args.pid, raw, args.rate, args.gil)
    try:
        result = run_round(args, proc, pool)
    finally:
        stop_profile(spy)
    return {"round": result.summary(), "raw": str(raw), **summarize_profile(raw, args.top)}


def listening_pid(url: str) -> int:
    port = httpx.URL(url).port
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise SystemExit(f"no process listens on port {port}; pass --pid")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.pid = args.pid or listening_pid(args.url)
    proc = psutil.Process(args.pid)
    with contextlib.ExitStack() as stack:
        pool = None
        if args.clients > 1:
            context = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(args.clients, mp_context=context))
        for _ in range(args.warmup):
            run_round(args, proc, pool)
        rounds = [run_round(args, proc, pool) for _ in range(args.rounds)]
        profile = profiled_round(args, proc, pool) if args.profile else None
    report(args, rounds, profile)


def report(args: argparse.Namespace, rounds: list[Round], profile: dict[str, Any] | None) -> None:
    out: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rounds": [r.summary() for r in rounds],
    }
    text = table(rounds)
    if profile:
        out["profile"] = profile
        text += profile_table(profile)
    failures = [f for r in rounds for f in r.failures]
    if failures:
        logger.warning("%d failed requests, first: %s", len(failures), failures[0])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    main()
