"""process_* and python_* series: the server's memory, CPU time and open files.

One process: prometheus-client's own process, platform and GC collectors, as any Python exporter
shows them. Several front ends: prometheus-client's multiprocess mode has no such collectors (a
collector runs in the process that answers the scrape, and sees only that process). The process_*
numbers of another process are public in /proc/<pid>, so the front end that answers reads each
front end's there, labelled `pid` (the pids are those of the multiprocess files, kept only while that
process lives); python_info is the same interpreter everywhere and stays unlabelled. python_gc_*
lives inside each interpreter and cannot be read from outside: with several front ends it is left
out rather than shown for whichever front end happened to answer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# prometheus-client's multiprocess files: counter_<pid>.db, gauge_livesum_<pid>.db, ...
_FILE_PID = re.compile(r"_(\d+)\.db$")


def add_process_collectors(registry: CollectorRegistry) -> None:
    """This process alone (no multiprocess mode)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class FrontEndProcesses(Collector):
    """process_* of every live front end writing to `metrics_dir`, labelled by pid; python_info."""

    def __init__(self, metrics_dir: str, proc: str = "/proc") -> None:
        self._dir = Path(metrics_dir)
        self._proc = proc
        self._platform = PlatformCollector(registry=None)

    def pids(self) -> list[int]:
        found = {int(m.group(1)) for p in self._dir.glob("*.db") if (m := _FILE_PID.search(p.name))}
        found.add(os.getpid())  # the answering front end, even before it wrote a file
        return sorted(pid for pid in found if Path(self._proc, str(pid)).exists())

    def collect(self) -> Iterable[Metric]:
        yield from self._platform.collect()
        merged: dict[str, Metric] = {}
        for pid in self.pids():
            reader = ProcessCollector(pid=lambda pid=pid: pid, proc=self._proc, registry=None)  # type: ignore[misc]
            for metric in reader.collect():
                family = merged.setdefault(
                    metric.name, Metric(metric.name, metric.documentation, metric.type, metric.unit)
                )
                for sample in metric.samples:
                    labels = {**sample.labels, "pid": str(pid)}
                    family.add_sample(sample.name, labels, sample.value, sample.timestamp)
        yield from merged.values()
