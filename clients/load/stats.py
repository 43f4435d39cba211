"""Per-request records and the summary of one load point, with `vllm bench serve`'s definitions.

TTFT: request start to the first chunk that carries choices. ITL: gaps between later such chunks.
End-to-end: request start to the last such chunk. TPOT: (e2e - TTFT) / (output tokens - 1).
Throughput: tokens of completed requests over the point's wall time (first send to last answer).
Percentiles interpolate linearly (numpy's default).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Load:
    """A closed-loop concurrency or an open-loop arrival rate (requests/s; inf: all at once)."""

    mode: str  # "concurrency" | "rate"
    value: float

    def label(self) -> str:
        value = int(self.value) if self.mode == "concurrency" else self.value
        return f"{self.mode}={value}"


@dataclass
class Record:
    load: str
    index: int
    start_s: float  # since the point began
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    output_tokens: int = 0
    error: str | None = None  # the kind: http_429, timeout, connection, stream_error, no_output
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.e2e_s is None or self.output_tokens <= 1:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def distribution_ms(values_s: list[float]) -> dict[str, float] | None:
    if not values_s:
        return None
    ms = [v * 1000 for v in values_s]
    out = {"mean": sum(ms) / len(ms)}
    out.update({f"p{p}": percentile(ms, p) for p in PERCENTILES})
    return {k: round(v, 3) for k, v in out.items()}


def summarize(load: Load, records: list[Record], duration_s: float) -> dict[str, Any]:
    done = [r for r in records if r.ok]
    output = sum(r.output_tokens for r in done)
    prompt = sum(r.prompt_tokens or 0 for r in done)
    tpots = [t for r in done if (t := r.tpot_s()) is not None]
    duration = max(duration_s, 1e-9)
    return {
        "load": {"mode": load.mode, "value": load.value},
        "requests": len(records),
        "completed": len(done),
        "failed": len(records) - len(done),
        "errors": dict(Counter(r.error for r in records if r.error)),
        "duration_s": round(duration_s, 3),
        "requests_per_s": round(len(done) / duration, 3),
        "output_tokens_per_s": round(output / duration, 2),
        "total_tokens_per_s": round((output + prompt) / duration, 2),
        "prompt_tokens": prompt,
        "output_tokens": output,
        "ttft_ms": distribution_ms([r.ttft_s for r in done if r.ttft_s is not None]),
        "itl_ms": distribution_ms([gap for r in done for gap in r.itl_s]),
        "tpot_ms": distribution_ms(tpots),
        "e2e_ms": distribution_ms([r.e2e_s for r in done if r.e2e_s is not None]),
    }
