"""PNG plots of a sweep with matplotlib, when it is installed: throughput vs load, latency
percentiles vs load, and each point's TTFT distribution (CDF)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from clients.load.stats import Load, Record

log = logging.getLogger(__name__)

LATENCIES = (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("tpot_ms", "TPOT"), ("e2e_ms", "end-to-end"))


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(summaries: list[dict[str, Any]], records: list[Record], out: Path) -> list[Path]:
    """Returns the files written (none when matplotlib is missing)."""
    if not summaries or not available():
        log.warning("matplotlib is not installed: no plots")
        return []
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    points = sorted(summaries, key=lambda s: float(s["load"]["value"]))
    finite = [p for p in points if math.isfinite(float(p["load"]["value"]))]  # rate inf has no x
    written = [_throughput(finite, out), _latency(finite, out)] if finite else []
    return [*written, _ttft_cdf(points, records, out)]


def _xaxis(points: list[dict[str, Any]]) -> tuple[list[float], str]:
    mode = points[0]["load"]["mode"]
    label = "concurrency (closed loop)" if mode == "concurrency" else "arrival rate, req/s (Poisson)"
    return [float(p["load"]["value"]) for p in points], label


def _log2_if_wide(ax: Any, x: list[float]) -> None:
    """Concurrency sweeps double (1, 2, 4 ... 256): on a linear axis the low end is a smudge."""
    if min(x) > 0 and max(x) / min(x) >= 8:
        from matplotlib.ticker import ScalarFormatter

        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 1, 2, 4 ... rather than 2^0, 2^1, 2^2


def _throughput(points: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib.pyplot as plt

    x, xlabel = _xaxis(points)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(x, [p["output_tokens_per_s"] for p in points], "o-", color="tab:blue", label="output tok/s")
    ax.set_xlabel(xlabel)
    _log2_if_wide(ax, x)
    ax.set_ylabel("output tokens/s", color="tab:blue")
    twin = ax.twinx()
    twin.plot(x, [p["requests_per_s"] for p in points], "s--", color="tab:orange", label="requests/s")
    twin.set_ylabel("requests/s", color="tab:orange")
    ax.set_title("Throughput vs load")
    ax.grid(alpha=0.3)
    path = out / "throughput.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _latency(points: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib.pyplot as plt

    x, xlabel = _xaxis(points)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for ax, (key, name) in zip(axes.flat, LATENCIES, strict=True):
        for stat, style in (("p50", "o-"), ("p90", "^-"), ("p99", "s--")):
            ys = [p[key][stat] if p[key] else float("nan") for p in points]
            ax.plot(x, ys, style, label=stat)
        ax.set_title(f"{name} (ms)")
        _log2_if_wide(ax, x)
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes[1]:
        ax.set_xlabel(xlabel)
    fig.suptitle("Latency percentiles vs load")
    path = out / "latency.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _ttft_cdf(points: list[dict[str, Any]], records: list[Record], out: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for point in points:
        label = Load(point["load"]["mode"], float(point["load"]["value"])).label()
        ttfts = sorted(r.ttft_s * 1000 for r in records if r.load == label and r.ttft_s is not None)
        if ttfts:
            ax.step(ttfts, [(i + 1) / len(ttfts) for i in range(len(ttfts))], where="post", label=label)
    ax.set_xlabel("time to first token (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("TTFT CDF")
    ax.grid(alpha=0.3)
    ax.legend()
    path = out / "ttft_cdf.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
