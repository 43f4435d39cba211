"""mixtral-load's plots read on their own: checked on the matplotlib objects (ticks, legends, titles,
what each panel holds), not on pixels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.load import plots
from clients.load.stats import Load, Record, summarize

pytest.importorskip("matplotlib")

CONFIG = {
    "base_url": "http://127.0.0.1:8000",
    "model": "tiny-mixtral",
    "endpoint": "chat",
    "input_len": 32,
    "output_len": 16,
    "ignore_eos": True,
    "num_prompts": 8,
    "dataset": None,
}


def sweep(mode: str, values: list[float]) -> tuple[list[dict[str, Any]], list[Record]]:
    """With ignore-eos every request makes exactly 16 tokens: tokens/s is 16 x requests/s."""
    summaries, records = [], []
    for value in values:
        load = Load(mode, value)
        done = [
            Record(load.label(), i, 0.0, ttft_s=0.01 * value + 0.001 * i, e2e_s=0.2 * value,
                   itl_s=[0.01] * 15, prompt_tokens=32, output_tokens=16)
            for i in range(8)
        ]  # fmt: skip
        records += done
        summaries.append(summarize(load, done, duration_s=0.4 * value))
    return summaries, records


@pytest.fixture(autouse=True)
def closes_figures() -> Iterator[None]:
    import matplotlib

    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def tick_labels(ax: Any) -> list[str]:
    """The x tick labels as drawn (matplotlib sets their text when the figure is drawn)."""
    ax.figure.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels()]


def test_throughput_has_a_panel_each_with_legends_and_ticks_at_the_sweep() -> None:
    summaries, _ = sweep("concurrency", [1, 2, 4])
    fig = plots.throughput_figure(summaries, plots.describe(CONFIG))
    tokens, requests = fig.axes  # two panels, no twin axis drawn over the first
    assert [line.get_label() for line in tokens.get_lines()] == ["output tokens/s"]
    assert [line.get_label() for line in requests.get_lines()] == ["requests/s"]
    for ax in (tokens, requests):
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [ax.get_lines()[0].get_label()]
        assert list(ax.get_xticks()) == [1.0, 2.0, 4.0]
        assert ax.get_xticks(minor=True).size == 0
    assert tick_labels(requests) == ["1", "2", "4"]  # the shared axis is labelled below the panels
    assert list(tokens.get_lines()[0].get_ydata()) == pytest.approx(
        [16 * r for r in requests.get_lines()[0].get_ydata()]
    )
    assert fig.get_suptitle().replace("\n", " ") == (
        "Throughput vs load http://127.0.0.1:8000 · tiny-mixtral · /chat · input 32 tokens"
        " · output 16 tokens, ignore-eos · 8 requests a point"
    )


def test_a_wide_sweep_gets_a_log_axis_ticked_at_each_load() -> None:
    summaries, _ = sweep("concurrency", [1, 2, 4, 8, 16, 32])
    fig = plots.latency_figure(summaries, "")
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        assert list(ax.get_xticks()) == [1, 2, 4, 8, 16, 32]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["p50", "p90", "p99"]
    assert [ax.get_title() for ax in fig.axes] == ["TTFT (ms)", "ITL (ms)", "TPOT (ms)", "end-to-end (ms)"]
    assert tick_labels(fig.axes[3]) == ["1", "2", "4", "8", "16", "32"]  # not 2^0, 2^1, ...
    assert fig.get_suptitle() == "Latency percentiles vs load"


def test_rates_are_ticked_as_given() -> None:
    summaries, _ = sweep("rate", [0.5, 1, 2.5])
    ax = plots.throughput_figure(summaries, "").axes[1]
    assert tick_labels(ax) == ["0.5", "1", "2.5"]
    assert ax.get_xlabel() == "arrival rate, req/s (Poisson)"


def test_the_ttft_cdf_names_each_load_and_the_run() -> None:
    summaries, records = sweep("concurrency", [1, 2])
    fig = plots.ttft_cdf_figure(summaries, records, plots.describe({**CONFIG, "ignore_eos": False}))
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["concurrency=1", "concurrency=2"]
    assert "output 16 tokens at most" in fig.get_suptitle()


def test_the_subtitle_names_a_dataset_rather_than_lengths() -> None:
    about = plots.describe({**CONFIG, "dataset": "/data/sharegpt.jsonl", "output_len": 64})
    assert "prompts from sharegpt.jsonl" in about and "input" not in about
    assert plots.describe({}) == ""


def test_write_plots_writes_three_pngs(tmp_path: Path) -> None:
    summaries, records = sweep("concurrency", [1, 2])
    written = plots.write_plots(summaries, records, tmp_path, CONFIG)
    assert [p.name for p in written] == ["throughput.png", "latency.png", "ttft_cdf.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
