"""vLLM's own `vllm:*` metric families, exported as vLLM's server would: its PrometheusStatLogger,
run on the stats every front end receives, with two changes that several front ends need.

Why vLLM's class rather than our own families under its names: the family set, label names
(model_name, engine, finished_reason, ...) and bucket edges then are exactly those of the vLLM
version installed (0.26 and 0.32 differ), so vLLM's dashboards and tools for that version read them;
and vLLM adds that logger to every AsyncLLM anyway unless given a subclass of it, so own families
under the same names would be counted twice in the multiprocess files. Its counters and histograms
are already right with several front ends: each front end counts the steps of its own requests, a
scheduler report reaches one front end only, and prometheus-client's multiprocess mode sums the
processes' files.

What we change:
- Gauges ("mostrecent" merge) are stamped with the engine core's time of the report
  (StatsRecorder.made_at), not the front end's wall clock: otherwise a front end that handled an old
  report late would win the merge (engine/vllm_stats.py says why that happens).
- With one process, the families go into a registry of this engine instead of prometheus-client's
  global one, so /metrics shows them without global state (several front ends: the multiprocess
  files carry them whatever registry they are in). The few vLLM makes with its own helper classes
  are moved there from the global registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from vllm.v1.metrics.loggers import PrometheusStatLogger

from server.engine.vllm_stats import StatsRecorder

# A stamp before the engine's first report: the multiprocess merge skips a stamp of 0.
BEFORE_ANY_STEP = 1e-9


def stamped_gauge_class(stamp: Callable[[], float], registry: CollectorRegistry) -> type[Gauge]:
    class StampedGauge(Gauge):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("registry", registry)
            super().__init__(*args, **kwargs)

        def set(self, value: float) -> None:
            if not self._is_most_recent:  # "sum" gauges (LoRA info) keep their own semantics
                super().set(value)
                return
            self._raise_if_not_observable()  # type: ignore[no-untyped-call]
            self._value.set(float(value), timestamp=max(stamp(), BEFORE_ANY_STEP))

    return StampedGauge


def _registered_in(cls: type[Any], registry: CollectorRegistry) -> type[Any]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("registry", registry)
        cls.__init__(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__})


def vllm_logger_class(recorder: StatsRecorder) -> type[PrometheusStatLogger]:
    """A PrometheusStatLogger subclass for one engine client, writing into the recorder's registry
    with its stamps. vLLM takes a subclass of its logger (a class, not a factory function: it checks
    issubclass) in place of the default one."""
    registry = recorder.registry

    def __init__(self: PrometheusStatLogger, vllm_config: Any, engine_indexes: Any = None) -> None:
        PrometheusStatLogger.__init__(self, vllm_config, engine_indexes)
        _adopt_strays(registry)

    attributes = {
        "__init__": __init__,
        "_gauge_cls": stamped_gauge_class(lambda: recorder.made_at, registry),
        "_counter_cls": _registered_in(Counter, registry),
        "_histogram_cls": _registered_in(Histogram, registry),
    }
    return type("StampedPrometheusStatLogger", (PrometheusStatLogger,), attributes)


def _adopt_strays(registry: CollectorRegistry) -> None:
    """Families that vLLM's helpers make with classes of their own (0.32: the estimated FLOPs and
    bytes counters; spec decoding, KV connectors when on) land in prometheus-client's global
    registry: move them into this engine's, as vLLM itself clears that registry of `vllm:*`."""
    for collector in list(REGISTRY._collector_to_names):
        if str(getattr(collector, "_name", "")).startswith("vllm:"):
            REGISTRY.unregister(collector)
            registry.register(collector)
