"""Prometheus collectors, one registry per app (no module-level state).

Names follow vLLM's where one exists (`vllm:time_to_first_token_seconds` is our
`mixtral_time_to_first_token_seconds`), under our own prefix; the README lists them all. Label
values are bounded: route templates, status codes, finish reasons, the served model's name,
configured API-key names; never a request id, a raw key or what a client typed.

Where each number comes from: the HTTP layer times what a client sees (TTFT, end-to-end, tokens per
request, requests by outcome); the engine reports its scheduler (running, waiting, KV cache) and
each step's inter-token latencies and queue waits (Engine.on_stats / on_timings).

The engine gauges (running, waiting, KV cache) with several front ends: each front end holds the
latest report it handled, and /metrics shows the one the engine core made last. prometheus-client's
"mostrecent" merge picks the value with the newest timestamp, which Gauge.set takes from the front
end's wall clock, so a front end that handled an old report late would win; these gauges are written
with the engine core's own stamp of the report instead (EngineStats.made_at; why it is needed:
engine/vllm_stats.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from server.engine.base import Engine, EngineStats, StepTimings
from server.observability import known_labels, request_context
from server.observability.process_metrics import FrontEndProcesses, add_process_collectors
from server.observability.request_context import RequestContext

PREFIX = "mixtral"
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# End-to-end and queue times run up to the request timeout (--request-timeout, 600 s by default).
_LONG_BUCKETS = (300.0, 600.0)
_TOKEN_BUCKETS = (1, 8, 32, 128, 512, 1024, 2048, 4096, 8192, 16384, 32768)
# A decode step of Mixtral-8x7B on two H200s takes about 5 ms (bench/results): finer at the bottom.
_ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
# The endpoints that run the engine: mixtral_requests_total counts these, by outcome.
GENERATION_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})
# The merge stamp of the engine gauges before the engine's first report: any real stamp is later.
_BEFORE_ANY_STEP = 1e-9


class ServerMetrics:
    """`multiprocess_dir`: this process is one of several front ends of one engine, and its series
    live in prometheus-client's multiprocess files there (the variable PROMETHEUS_MULTIPROC_DIR, set
    before this process started, switches the client library to them); /metrics then reads all."""

    def __init__(
        self,
        multiprocess_dir: str | None = None,
        api_server: str = "0",
        model: str = "unknown",
        request_timeout: float | None = 600.0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        self.model = model
        r = self.registry
        long_buckets = _long_latency_buckets(request_timeout)
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
        self.ttft = self._histogram("time_to_first_token_seconds", "Time to first token.", _LATENCY_BUCKETS)
        self.e2e = self._histogram("e2e_request_latency_seconds", "Request latency.", long_buckets)
        self.generation_tokens_per_request = self._histogram(
            "request_generation_tokens", "Generated tokens per request.", _TOKEN_BUCKETS
        )
        self.prompt_tokens_per_request = self._histogram(
            "request_prompt_tokens", "Prompt tokens per request.", _TOKEN_BUCKETS
        )
        self.inter_token_latency = self._histogram(
            "inter_token_latency_seconds",
            "Time between two tokens of one sequence, as the engine produced them.",
            _ITL_BUCKETS,
        )
        self.queue_time = self._histogram(
            "request_queue_time_seconds",
            "Time an engine request waited before it was first scheduled.",
            (0.001, 0.005, *long_buckets),
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
        self.key_requests = Counter(
            f"{PREFIX}_api_key_requests",
            "Requests served per API key (admitted and ended).",
            ["key"],
            registry=r,
        )
        self.key_tokens = Counter(
            f"{PREFIX}_api_key_tokens",
            "Tokens used per API key: kind prompt or completion.",
            ["key", "kind"],
            registry=r,
        )
        # The store a fleet shares for per-key limits and usage (--shared-state).
        self.shared_state_errors = Counter(
            f"{PREFIX}_shared_state_errors",
            "Calls to the shared store that failed (per-key limits then follow --shared-state-failure).",
            registry=r,
        )
        self.shared_state_up = Gauge(
            f"{PREFIX}_shared_state_up",
            "1 while the shared store answered the last call, 0 after it failed.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.shared_state_up.set(1)  # nothing to fail without one: no alert on a single host
        # The engine core reports to one front end at a time: the report it made last wins.
        self.running = self._engine_gauge("num_requests_running", "Requests in the engine's running batch.")
        self.waiting = self._engine_gauge("num_requests_waiting", "Requests waiting for the engine.")
        self.kv_cache_usage = self._engine_gauge("kv_cache_usage_perc", "KV-cache usage, 0 to 1.")
        self._start_at_zero()
        # What /metrics shows with one process: our families (self.registry, which is only ours),
        # this process's process_*/python_*, and vLLM's families once an engine is watched.
        self._exposed = CollectorRegistry(auto_describe=True)
        self._exposed.register(r)
        if multiprocess_dir is None:
            add_process_collectors(self._exposed)

    def _start_at_zero(self) -> None:
        """Every known label combination of the labelled counters, at 0 (known_labels.py says why)."""
        for reason in known_labels.REJECTION_REASONS:
            self.rejections.labels(reason=reason)
        for reason in known_labels.CHOICE_FINISH_REASONS:
            self.request_success.labels(finish_reason=reason)
        for endpoint in known_labels.DISCONNECT_ENDPOINTS:
            self.client_disconnects.labels(endpoint=endpoint)
        for endpoint in sorted(GENERATION_ROUTES):
            for reason in known_labels.ANSWERED_FINISH_REASONS:
                self.requests.labels(endpoint=endpoint, model=self.model, status="200", finish_reason=reason)

    def start_keys(self, names: Iterable[str]) -> None:
        """The configured API keys' series at 0, as the other labelled counters."""
        for key in names:
            self.key_in_flight.labels(key=key)
            self.key_requests.labels(key=key)
            for kind in known_labels.TOKEN_KINDS:
                self.key_tokens.labels(key=key, kind=kind)

    def _histogram(self, name: str, documentation: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(f"{PREFIX}_{name}", documentation, buckets=buckets, registry=self.registry)

    def _engine_gauge(self, name: str, documentation: str) -> Gauge:
        name = f"{PREFIX}_{name}"
        return Gauge(name, documentation, registry=self.registry, multiprocess_mode="mostrecent")

    def watch_engine(self, engine: Engine) -> None:
        if self._multiprocess_dir is None:  # several front ends: vLLM's families are in the files
            self._exposed.register(engine.vllm_metrics())
        self.record_engine_stats(engine.stats())
        engine.on_stats(self.record_engine_stats)
        engine.on_timings(self.record_step_timings)

    def record_engine_stats(self, stats: EngineStats) -> None:
        # A report from before any step still needs a stamp above 0: the merge skips a 0 stamp.
        stamp = max(stats.made_at, _BEFORE_ANY_STEP)
        for gauge, value in (
            (self.running, stats.running),
            (self.waiting, stats.waiting),
            (self.kv_cache_usage, stats.kv_cache_usage),
        ):
            if self._multiprocess_dir is None:
                gauge.set(value)
            else:  # the stamp the merge orders by; Gauge.set would stamp the wall clock
                gauge._value.set(float(value), timestamp=stamp)

    def record_step_timings(self, timings: StepTimings) -> None:
        for seconds in timings.inter_token_latencies:
            self.inter_token_latency.observe(seconds)
        for seconds in timings.queue_times:
            self.queue_time.observe(seconds)

    def count_exchange(self, context: RequestContext) -> None:
        """Called by the observing middleware when an HTTP exchange has ended."""
        status = str(context.status)
        self.http_requests.labels(route=context.route, status=status).inc()
        self.api_server_requests.inc()
        if context.route in GENERATION_ROUTES:
            labels = {"endpoint": context.route, "model": self.model, "status": status}
            self.requests.labels(**labels, finish_reason=context.finish_reason()).inc()

    def render(self, names: Sequence[str] = ()) -> bytes:
        """The exposition text: this process's registry, or every front end's series. `names`: only
        these samples (vLLM's /metrics?name[]=...: prometheus-client matches sample names, so a
        histogram is asked for as its _bucket, _count and _sum)."""
        registry = self._exposed
        if self._multiprocess_dir is not None:
            # auto_describe: restricted_registry finds a collector by the names it yields; the files
            # are then read twice, so only when filtering
            registry = CollectorRegistry(auto_describe=bool(names))
            MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
            registry.register(FrontEndProcesses(self._multiprocess_dir))
        if names:
            return generate_latest(registry.restricted_registry(names))
        return generate_latest(registry)


def _long_latency_buckets(request_timeout: float | None) -> tuple[float, ...]:
    """The latency buckets up to the request timeout: the default's 600 s, or a longer timeout."""
    longest = (
        (request_timeout,) if request_timeout is not None and request_timeout > _LONG_BUCKETS[-1] else ()
    )
    return (*_LATENCY_BUCKETS, *_LONG_BUCKETS, *longest)


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
        request_context.record_usage(prompt_tokens, completion_tokens, reasons)
