"""The metrics table in docs/operations.md lists every collector the server registers, with its type
and exactly its labels, and nothing the server does not export."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import Metric

from server.observability.metrics import ServerMetrics

OPERATIONS = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
SUFFIX = {"counter": "_total", "histogram": "", "gauge": ""}


def _documented() -> dict[str, tuple[str, set[str]]]:
    section = OPERATIONS.split("## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(mixtral_\w+)` \| (\w+) \|([^|]*)\|", section, flags=re.MULTILINE)
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def _exported() -> dict[str, tuple[str, set[str]]]:
    registry = ServerMetrics().registry
    out = {}
    for collector in registry._collector_to_names:
        family: Metric = collector.describe()[0]
        out[family.name + SUFFIX[family.type]] = (family.type, set(collector._labelnames))
    return out


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    assert _documented() == _exported()
