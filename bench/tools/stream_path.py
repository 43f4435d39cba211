"""CPU per streamed token of our HTTP layer alone: the FastAPI app (middleware, route, render, SSE)
driven in-process over ASGI by N concurrent streams, behind an engine stand-in that hands each stream
one delta per turn of the event loop. No vLLM, no sockets, no client: what is left is what this
repository's own code (and FastAPI/Starlette around it) costs per token, measured as process CPU time,
so it holds still on a busy machine where bench/tools/frontend_profile.py cannot.

    python bench/tools/stream_path.py [--endpoint chat] [--streams 64] [--tokens 128] [--rounds 7]
    PYTHONPATH=/path/to/other/checkout python bench/tools/stream_path.py ...   # the same load on other code

Writes a markdown line per round on stdout, and JSON with --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

import server
from server.app import create_app
from server.config import Settings, default_cache_dir
from server.engine.base import Delta, EngineStats, GenerateRequest, ModelCard, StepTimings
from server.engine.tiny import ensure_tiny_model

WORDS = [" the", " sea", " light", "house", " keeper", ",", " and", " é", " storm", "."]


class StandInEngine:
    """Yields one delta per stream per loop turn, like vLLM's output handler waking each stream once
    per engine step; the last delta carries finish_reason "length"."""

    def __init__(self, root: Path) -> None:
        self.model_card = ModelCard("tiny-mixtral", str(root), 32768, 32000, "stand-in", 0)

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Delta, None]:
        return self._stream(request.sampling.max_tokens)

    async def _stream(self, max_tokens: int) -> AsyncGenerator[Delta, None]:
        for i in range(max_tokens):
            await asyncio.sleep(0)
            yield Delta(WORDS[i % len(WORDS)], [100 + i], "length" if i == max_tokens - 1 else None)

    async def abort(self, request_id: str) -> None:
        pass

    async def check_health(self) -> None:
        pass

    def stats(self) -> EngineStats:
        return EngineStats()

    def vllm_metrics(self) -> CollectorRegistry:
        return CollectorRegistry()  # no vLLM engine, no vllm:* families

    def on_stats(self, listener: Callable[[EngineStats], None]) -> None:
        pass

    def on_timings(self, listener: Callable[[StepTimings], None]) -> None:
        pass

    async def shutdown(self) -> None:
        pass


class Exchange:
    """One request's ASGI receive/send: the body once, then nothing until the response ends."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body
        self.done = asyncio.Event()
        self.received = 0

    async def receive(self) -> dict[str, Any]:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.done.set()


def scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }


def request(endpoint: str, tokens: int) -> tuple[str, bytes]:
    common = {"max_tokens": tokens, "stream": True, "stream_options": {"include_usage": True}}
    if endpoint == "completions":
        return "/v1/completions", json.dumps({"prompt": "Once upon a time", **common}).encode()
    messages = [{"role": "user", "content": "Tell me about the sea."}]
    return "/v1/chat/completions", json.dumps({"messages": messages, **common}).encode()


async def one_round(app: Any, args: argparse.Namespace) -> dict[str, float]:
    path, body = request(args.endpoint, args.tokens)
    exchanges = [Exchange(body) for _ in range(args.streams)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(app(scope(path), x.receive, x.send) for x in exchanges))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    tokens = args.streams * args.tokens
    return {
        "cpu_us_per_token": 1e6 * cpu / tokens,
        "wall_s": wall,
        "bytes": sum(x.received for x in exchanges),
    }


async def run(args: argparse.Namespace) -> list[dict[str, float]]:
    settings = Settings(cache_dir=args.cache_dir, warmup=False)
    app = create_app(settings, engine=StandInEngine(ensure_tiny_model(args.cache_dir)))
    async with app.router.lifespan_context(app):
        await one_round(app, args)  # warm-up: imports, caches
        return [await one_round(app, args) for _ in range(args.rounds)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat")
    p.add_argument("--streams", type=int, default=64)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop  # uvicorn runs on it when installed

        rounds = uvloop.run(run(args))
    except ImportError:
        rounds = asyncio.run(run(args))
    per_token = [r["cpu_us_per_token"] for r in rounds]
    code = str(Path(server.__file__).resolve().parent.parent)
    line = (
        f"{args.endpoint}, {args.streams} streams x {args.tokens} tokens, code at {code}: "
        f"CPU us/token median {statistics.median(per_token):.2f}, "
        f"range {min(per_token):.2f}-{max(per_token):.2f} ({len(per_token)} rounds)"
    )
    sys.stdout.write(line + "\n")
    if args.out:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"config": config, "code": code, "rounds": rounds}, indent=2) + "\n")


if __name__ == "__main__":
    main()
