"""Prometheus collectors, one registry per app (no module-level state).

A first set: request counts, token counts, latency histograms, and the engine's scheduler gauges,
set on each engine step. Names follow vLLM's where one exists, under our own prefix.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.engine.base import Engine, EngineStats

PREFIX = "mixtral"
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_TOKEN_BUCKETS = (1, 8, 32, 128, 512, 1024, 2048, 4096, 8192, 16384, 32768)


class ServerMetrics:
    """`multiprocess_dir`: this process is one of several front ends of one engine, and its series
    live in prometheus-client's multiprocess files there (the variable PROMETHEUS_MULTIPROC_DIR, set
    before this process started, switches the client library to them); /metrics then reads all."""

    def __init__(self, multiprocess_dir: str | None = None, api_server: str = "0") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        r = self.registry
        self.http_requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.api_server_requests = Counter(
            f"{PREFIX}_api_server_requests",
            "HTTP requests by front-end process (--api-server-count).",
            ["api_server"],
            registry=r,
        ).labels(api_server=api_server)
        self.request_success = Counter(
            f"{PREFIX}_request_success", "Finished choices by finish reason.", ["finish_reason"], registry=r
        )
        self.prompt_tokens = Counter(f"{PREFIX}_prompt_tokens", "Prompt tokens processed.", registry=r)
        self.generation_tokens = Counter(f"{PREFIX}_generation_tokens", "Tokens generated.", registry=r)
        self.ttft = Histogram(
            f"{PREFIX}_time_to_first_token_seconds",
            "Time to first token.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            f"{PREFIX}_e2e_request_latency_seconds", "Request latency.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.generation_tokens_per_request = Histogram(
            f"{PREFIX}_request_generation_tokens",
            "Generated tokens per request.",
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.rejections = Counter(
            f"{PREFIX}_rejected_requests",
            "Requests refused before the engine, by reason (auth, rate_limit, overload, ...).",
            ["reason"],
            registry=r,
        )
        self.client_disconnects = Counter(
            f"{PREFIX}_client_disconnects",
            "Requests whose client went away before the answer ended; the engine work was aborted.",
            ["endpoint"],
            registry=r,
        )
        # Labelled by the key's name (its position in --api-keys, or the name given there), never by
        # the key itself: bounded and safe to show.
        self.key_in_flight = Gauge(
            f"{PREFIX}_api_key_requests_in_flight",
            "Requests in flight per API key.",
            ["key"],
            registry=r,
            multiprocess_mode="livesum",
        )
        # The engine core reports to one front end at a time: the newest report wins.
        self.running = self._engine_gauge("num_requests_running", "Requests in the engine's running batch.")
        self.waiting = self._engine_gauge("num_requests_waiting", "Requests waiting for the engine.")
        self.kv_cache_usage = self._engine_gauge("kv_cache_usage_perc", "KV-cache usage, 0 to 1.")

    def _engine_gauge(self, name: str, documentation: str) -> Gauge:
        name = f"{PREFIX}_{name}"
        return Gauge(name, documentation, registry=self.registry, multiprocess_mode="mostrecent")

    def watch_engine(self, engine: Engine) -> None:
        self.record_engine_stats(engine.stats())
        engine.on_stats(self.record_engine_stats)

    def record_engine_stats(self, stats: EngineStats) -> None:
        self.running.set(stats.running)
        self.waiting.set(stats.waiting)
        self.kv_cache_usage.set(stats.kv_cache_usage)

    def render(self) -> bytes:
        """The exposition text: this process's registry, or every front end's series."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


class RequestTimer:
    """Timings of one API request, reported once when it ends."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self._start = time.perf_counter()
        self._first: float | None = None

    def token(self) -> None:
        if self._first is None:
            self._first = time.perf_counter()
            self._metrics.ttft.observe(self._first - self._start)

    def finish(self, prompt_tokens: int, completion_tokens: int, finish_reasons: Iterable[str]) -> None:
        m = self._metrics
        m.e2e.observe(time.perf_counter() - self._start)
        m.prompt_tokens.inc(prompt_tokens)
        m.generation_tokens.inc(completion_tokens)
        m.generation_tokens_per_request.observe(completion_tokens)
        for reason in finish_reasons:
            m.request_success.labels(finish_reason=reason).inc()


class HTTPMetricsMiddleware:
    """Counts responses by route template (bounded labels) and status; pure ASGI, so streams pass."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.http_requests.labels(route=path, status=str(status)).inc()
            self.metrics.api_server_requests.inc()
