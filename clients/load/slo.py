"""SLO mode: find the highest load whose summary meets every objective, e.g. TTFT p99 < 1 s.

Doubling from a start load until an objective fails, then bisecting between the last load that met
them and the first that did not: about log2(max) + log2(max/precision) points, each a full run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SPEC = re.compile(
    r"^\s*(?P<metric>ttft|itl|tpot|e2e)[._ ](?P<stat>mean|p50|p90|p95|p99)\s*<\s*"
    r"(?P<value>[0-9.]+)\s*(?P<unit>ms|s)?\s*$"
)


@dataclass(frozen=True)
class Objective:
    metric: str  # ttft | itl | tpot | e2e
    stat: str  # mean | p50 | p90 | p95 | p99
    limit_ms: float

    @classmethod
    def parse(cls, text: str) -> Objective:
        """'ttft.p99<1s', 'itl_p50 < 50ms' (no unit: milliseconds)."""
        match = _SPEC.match(text.lower())
        if not match:
            raise ValueError(f"not an objective: {text!r} (e.g. 'ttft.p99<1s', 'tpot.p50<50ms')")
        value = float(match["value"]) * (1000 if match["unit"] == "s" else 1)
        return cls(match["metric"], match["stat"], value)

    def met(self, summary: dict[str, Any]) -> bool:
        dist = summary.get(f"{self.metric}_ms")
        return dist is not None and float(dist[self.stat]) < self.limit_ms

    def __str__(self) -> str:
        return f"{self.metric} {self.stat} < {self.limit_ms:g} ms"


def meets(summary: dict[str, Any], objectives: list[Objective], max_error_rate: float) -> bool:
    if summary["requests"] == 0 or summary["failed"] / summary["requests"] > max_error_rate:
        return False
    return all(o.met(summary) for o in objectives)


def search(
    measure: Callable[[float], bool], start: float, maximum: float, integer: bool, precision: float = 1.1
) -> float | None:
    """The highest load in [start, maximum] for which `measure` is true, assuming it is true below
    some load and false above. None if even `start` fails. Integer loads bisect to neighbours,
    rates until hi/lo < `precision`."""
    if not measure(start):
        return None
    good, bad = start, None
    while bad is None and good < maximum:
        nxt = min(good * 2, maximum)
        if measure(nxt):
            good = nxt
        else:
            bad = nxt
    if bad is None:
        return good
    while (bad - good > 1) if integer else (bad / good >= precision):
        mid = (good + bad) // 2 if integer else (good * bad) ** 0.5
        if measure(mid):
            good = mid
        else:
            bad = mid
    return good
