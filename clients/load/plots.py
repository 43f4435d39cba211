"""PNG plots of a sweep with matplotlib, when it is installed: throughput vs load, latency
percentiles vs load, and each point's TTFT distribution (CDF).

Each plot is read on its own, often far from the run (pasted into a report): so each says what was
measured under its title (server, model, endpoint, prompt and output lengths, ignore-eos), ticks
the x axis at the loads that were run and nowhere else, and labels every line in a legend. Tokens/s
and requests/s get a panel each: with --ignore-eos every request makes the same number of tokens,
so the two curves are proportional and on twin axes one hid the other exactly.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.load.stats import Load, Record

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

LATENCIES = (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("tpot_ms", "TPOT"), ("e2e_ms", "end-to-end"))


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(
    summaries: list[dict[str, Any]], records: list[Record], out: Path, config: dict[str, Any] | None = None
) -> list[Path]:
    """Returns the files written (none when matplotlib is missing). `config` is the run's settings
    as summary.json holds them; the plots' subtitles come from it."""
    if not summaries or not available():
        log.warning("matplotlib is not installed: no plots")
        return []
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    about = describe(config or {})
    points = sorted(summaries, key=lambda s: float(s["load"]["value"]))
    finite = [p for p in points if math.isfinite(float(p["load"]["value"]))]  # rate inf has no x
    figures = {"throughput.png": throughput_figure(finite, about)} if finite else {}
    if finite:
        figures["latency.png"] = latency_figure(finite, about)
    figures["ttft_cdf.png"] = ttft_cdf_figure(points, records, about)
    return [_save(figure, out / name) for name, figure in figures.items()]


def describe(config: dict[str, Any]) -> str:
    """One line that says what was measured, from the run's settings (the keys it lacks are left out)."""
    parts = [str(config[k]) for k in ("base_url", "model") if config.get(k)]
    if config.get("endpoint"):
        parts.append(f"/{config['endpoint']}")
    if config.get("dataset"):
        parts.append(f"prompts from {Path(str(config['dataset'])).name}")
    elif config.get("input_len") is not None:
        parts.append(f"input {config['input_len']} tokens")
    if config.get("output_len") is not None:
        eos = ", ignore-eos" if config.get("ignore_eos") else " at most"
        parts.append(f"output {config['output_len']} tokens{eos}")
    if config.get("num_prompts") is not None:
        parts.append(f"{config['num_prompts']} requests a point")
    return " · ".join(parts)


def _save(figure: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _title(figure: Figure, title: str, about: str) -> None:
    """The title, then what was measured, broken between its parts to fit the figure's width."""
    width = int(figure.get_figwidth() * 13)  # characters of 10-point type a line
    figure.suptitle(f"{title}\n{_wrap(about, width)}" if about else title, fontsize=10)


def _wrap(about: str, width: int) -> str:
    lines: list[str] = []
    for part in about.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return " ·\n".join(lines)


def _xaxis(points: list[dict[str, Any]]) -> tuple[list[float], str]:
    mode = points[0]["load"]["mode"]
    label = "concurrency (closed loop)" if mode == "concurrency" else "arrival rate, req/s (Poisson)"
    return [float(p["load"]["value"]) for p in points], label


def _sweep_ticks(ax: Axes, x: list[float]) -> None:
    """Ticks at the loads that were run, labelled as given (1, 2, 4): a 1, 2, 4 sweep was ticked at
    1.5, 2.5, 3.5. Concurrency sweeps double (1, 2, 4 ... 256): on a linear axis the low end is a
    smudge, so a wide sweep gets a log-2 axis."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    if min(x) > 0 and max(x) / min(x) >= 8:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(x))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{v:g}" for v in x]))
    ax.xaxis.set_minor_locator(NullLocator())


def throughput_figure(points: list[dict[str, Any]], about: str) -> Figure:
    import matplotlib.pyplot as plt

    x, xlabel = _xaxis(points)
    fig, (tokens, requests) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, layout="constrained")
    tokens.plot(
        x, [p["output_tokens_per_s"] for p in points], "o-", color="tab:blue", label="output tokens/s"
    )
    tokens.set_ylabel("output tokens/s")
    requests.plot(x, [p["requests_per_s"] for p in points], "s-", color="tab:orange", label="requests/s")
    requests.set_ylabel("requests/s")
    requests.set_xlabel(xlabel)
    for ax in (tokens, requests):
        _sweep_ticks(ax, x)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    _title(fig, "Throughput vs load", about)
    return fig


def latency_figure(points: list[dict[str, Any]], about: str) -> Figure:
    import matplotlib.pyplot as plt

    x, xlabel = _xaxis(points)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True, layout="constrained")
    for ax, (key, name) in zip(axes.flat, LATENCIES, strict=True):
        for stat, style in (("p50", "o-"), ("p90", "^-"), ("p99", "s--")):
            ys = [p[key][stat] if p[key] else float("nan") for p in points]
            ax.plot(x, ys, style, label=stat)
        ax.set_title(f"{name} (ms)")
        _sweep_ticks(ax, x)
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes[1]:
        ax.set_xlabel(xlabel)
    _title(fig, "Latency percentiles vs load", about)
    return fig


def ttft_cdf_figure(points: list[dict[str, Any]], records: list[Record], about: str) -> Figure:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8), layout="constrained")
    for point in points:
        label = Load(point["load"]["mode"], float(point["load"]["value"])).label()
        ttfts = sorted(r.ttft_s * 1000 for r in records if r.load == label and r.ttft_s is not None)
        if ttfts:
            ax.step(ttfts, [(i + 1) / len(ttfts) for i in range(len(ttfts))], where="post", label=label)
    ax.set_xlabel("time to first token (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(title="load")
    _title(fig, "TTFT CDF", about)
    return fig
