"""Prometheus collectors, one registry per app (no module-level state but one context variable).

Names follow vLLM's where one exists (`vllm:time_to_first_token_seconds` is our
`mixtral_time_to_first_token_seconds`), under our own prefix; the README lists them all. Label
values are bounded: route templates, status codes, finish reasons, the served model's name,
configured API-key names; never a request id, a raw key or what a client typed.

Where each number comes from: the HTTP layer times what a client sees (TTFT, end-to-end, tokens per
request, requests by outcome); the engine reports its scheduler (running, waiting, KV cache) and
each step's inter-token latencies and queue waits (Engine.on_stats / on_timings).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.engine.base import Engine, EngineStats, StepTimings
from server.observability import request_context

PREFIX = "mixtral"
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_TOKEN_BUCKETS = (1, 8, 32, 128, 512, 1024, 2048, 4096, 8192, 16384, 32768)
# A decode step of Mixtral-8x7B on two H200s takes about 5 ms (bench/results): finer at the bottom.
_ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
_QUEUE_BUCKETS = (0.001, 0.005) + _LATENCY_BUCKETS
# The endpoints that run the engine: mixtral_requests_total counts these, by outcome.
GENERATION_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})


class ServerMetrics:
    """`multiprocess_dir`: this process is one of several front ends of one engine, and its series
    live in prometheus-client's multiprocess files there (the variable PROMETHEUS_MULTIPROC_DIR, set
    before this process started, switches the client library to them); /metrics then reads all."""

    def __init__(
        self, multiprocess_dir: str | None = None, api_server: str = "0", model: str = "unknown"
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        self.model = model
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "Generation requests (chat, completions) by endpoint, model, status and finish reason.",
            ["endpoint", "model", "status", "finish_reason"],
            registry=r,
        )
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
        self.prompt_tokens_per_request = Histogram(
            f"{PREFIX}_request_prompt_tokens",
            "Prompt tokens per request.",
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.inter_token_latency = Histogram(
            f"{PREFIX}_inter_token_latency_seconds",
            "Time between two tokens of one sequence, as the engine produced them.",
            buckets=_ITL_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            f"{PREFIX}_request_queue_time_seconds",
            "Time an engine request waited before it was first scheduled.",
            buckets=_QUEUE_BUCKETS,
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
        engine.on_timings(self.record_step_timings)

    def record_engine_stats(self, stats: EngineStats) -> None:
        self.running.set(stats.running)
        self.waiting.set(stats.waiting)
        self.kv_cache_usage.set(stats.kv_cache_usage)

    def record_step_timings(self, timings: StepTimings) -> None:
        for seconds in timings.inter_token_latencies:
            self.inter_token_latency.observe(seconds)
        for seconds in timings.queue_times:
            self.queue_time.observe(seconds)

    def count_request(self, endpoint: str, status: int, outcome: RequestOutcome) -> None:
        labels = {"endpoint": endpoint, "model": self.model, "status": str(status)}
        self.requests.labels(**labels, finish_reason=outcome.finish_reason(status)).inc()

    def render(self) -> bytes:
        """The exposition text: this process's registry, or every front end's series."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


@dataclass(slots=True)
class RequestOutcome:
    """How one HTTP request ended, pieced together by the two parts that see it: the HTTP middleware
    (status, whether the client left first) and the request's RequestTimer (finish reasons)."""

    finish_reasons: list[str] | None = None  # set once the answer ran to its end
    disconnected: bool = False  # the client left before the response was complete
    responded: bool = False

    def finish_reason(self, status: int) -> str:
        """One value per request: `length` if any choice hit its token limit, else `stop`; `abort` if
        the client left first; `error` if it failed after the response began; `none` if refused or
        failed before (the status says why)."""
        if self.finish_reasons:
            return "length" if "length" in self.finish_reasons else "stop"
        if self.disconnected:
            return "abort"
        return "error" if status == 200 else "none"


# The middleware owns one RequestOutcome per HTTP request; the RequestTimer, deep in the handler or
# its stream (child tasks copy the context, so they see the same object), reports into it.
_OUTCOME: ContextVar[RequestOutcome | None] = ContextVar("mixtral_request_outcome", default=None)


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
        m.prompt_tokens_per_request.observe(prompt_tokens)
        m.generation_tokens_per_request.observe(completion_tokens)
        reasons = list(finish_reasons)
        for reason in reasons:
            m.request_success.labels(finish_reason=reason).inc()
        outcome = _OUTCOME.get()
        if outcome is not None:
            outcome.finish_reasons = reasons
        request_context.record_usage(prompt_tokens, completion_tokens, reasons)


class HTTPMetricsMiddleware:
    """Counts responses by route template (bounded labels) and status, and generation requests by
    outcome; pure ASGI, so streams pass through untouched."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        outcome = RequestOutcome()
        token = _OUTCOME.set(outcome)

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and not outcome.responded:
                outcome.disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                outcome.responded = True
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            _OUTCOME.reset(token)
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.http_requests.labels(route=path, status=str(status)).inc()
            self.metrics.api_server_requests.inc()
            if path in GENERATION_ROUTES:
                self.metrics.count_request(path, status, outcome)
