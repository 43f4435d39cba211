"""The load tester's arithmetic and workload, without a server: percentiles as numpy computes them,
vLLM bench's metric definitions, SLO parsing and search, JSONL conversations, synthetic prompts of
exact token length, and that it runs with neither matplotlib nor tqdm installed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from clients.load import prompts, slo
from clients.load.stats import Load, Record, percentile, summarize
from tests.conftest import cache_dir


@pytest.mark.parametrize("p", [0, 1, 50, 90, 99, 100])
def test_percentiles_interpolate_like_numpy(p: int) -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.5, 2.0, 11.0]
    assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))


def test_summary_follows_vllm_bench_definitions() -> None:
    ok = Record(
        "concurrency=2", 0, 0.0, ttft_s=0.1, e2e_s=0.5, itl_s=[0.1] * 4, prompt_tokens=10, output_tokens=5
    )
    ok2 = Record(
        "concurrency=2", 1, 0.0, ttft_s=0.3, e2e_s=0.7, itl_s=[0.1] * 4, prompt_tokens=10, output_tokens=5
    )
    bad = Record("concurrency=2", 2, 0.0, error="http_429")
    s = summarize(Load("concurrency", 2), [ok, ok2, bad], duration_s=2.0)
    assert (s["completed"], s["failed"], s["errors"]) == (2, 1, {"http_429": 1})
    assert s["output_tokens_per_s"] == 5.0 and s["requests_per_s"] == 1.0
    assert s["total_tokens_per_s"] == 15.0
    assert s["tpot_ms"]["p50"] == pytest.approx(100.0)  # (e2e - ttft) / (tokens - 1)
    assert s["ttft_ms"]["mean"] == pytest.approx(200.0)
    assert s["itl_ms"]["p99"] == pytest.approx(100.0)


def test_objectives_parse_in_seconds_or_milliseconds() -> None:
    assert slo.Objective.parse("ttft.p99<1s") == slo.Objective("ttft", "p99", 1000.0)
    assert slo.Objective.parse("TPOT_p50 < 40ms") == slo.Objective("tpot", "p50", 40.0)
    assert slo.Objective.parse("e2e.mean<250") == slo.Objective("e2e", "mean", 250.0)
    with pytest.raises(ValueError):
        slo.Objective.parse("throughput>5")


def test_a_point_with_failures_misses_the_slo_unless_allowed() -> None:
    summary = {"requests": 10, "failed": 1, "ttft_ms": {"p99": 10.0}}
    objective = [slo.Objective("ttft", "p99", 100.0)]
    assert not slo.meets(summary, objective, max_error_rate=0.0)
    assert slo.meets(summary, objective, max_error_rate=0.1)


def test_search_finds_the_highest_integer_load_that_meets_the_slo() -> None:
    seen: list[float] = []

    def measure(load: float) -> bool:
        seen.append(load)
        return load <= 37

    assert slo.search(measure, 1, 256, integer=True) == 37
    assert seen[:7] == [1, 2, 4, 8, 16, 32, 64]
    assert len(seen) < 14
    assert slo.search(lambda load: load <= 300, 1, 256, integer=True) == 256
    assert slo.search(lambda load: False, 1, 256, integer=True) is None


def test_search_over_rates_stops_within_the_precision() -> None:
    best = slo.search(lambda rate: rate <= 5.3, 1.0, 64.0, integer=False, precision=1.05)
    assert best is not None and 5.3 / 1.05 <= best <= 5.3


def test_jsonl_conversations_in_openai_or_sharegpt_form(tmp_path: Path) -> None:
    path = tmp_path / "convs.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        {
            "conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q"}],
            "max_tokens": 7,
        },
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    items = prompts.from_jsonl(path, 3, output_len=20)
    assert items[0].messages == [{"role": "user", "content": "a"}]  # the recorded answer is dropped
    assert items[1].messages[0] == {"role": "system", "content": "s"} and items[1].max_tokens == 7
    assert items[2] == items[0] and items[0].max_tokens == 20


def test_synthetic_prompts_have_the_asked_token_length() -> None:
    from server.engine.tiny import ensure_tiny_model

    tokenizer = prompts.load_tokenizer(str(ensure_tiny_model(cache_dir())))
    items = prompts.synthetic(tokenizer, 8, input_len=64, output_len=16, seed=1)
    lengths = [len(tokenizer.encode(i.messages[0]["content"], add_special_tokens=False)) for i in items]
    assert all(abs(n - 64) <= 1 for n in lengths), lengths
    assert len({i.messages[0]["content"] for i in items}) == 8  # distinct: no prefix-cache help
    assert prompts.synthetic(tokenizer, 2, 64, 16, seed=1) == items[:2]  # seeded


def test_load_tester_runs_without_matplotlib_or_tqdm(tmp_path: Path) -> None:
    """A GPU host has httpx and transformers only: no bar, no plots, everything else works."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("matplotlib", "tqdm"):
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        from clients.load import cli, plots
        from clients.load.progress import progress_bar
        from clients.load.stats import Load, Record, summarize
        bar = progress_bar(3, "x", enabled=True)
        bar.update(1); bar.close()
        recs = [Record("concurrency=1", 0, 0.0, ttft_s=0.1, e2e_s=0.2, output_tokens=2)]
        summary = summarize(Load("concurrency", 1), recs, 1.0)
        assert plots.write_plots([summary], recs, Path({str(tmp_path)!r})) == []
        assert "matplotlib" not in sys.modules and "tqdm" not in sys.modules
        cli.build_parser().parse_args(["--concurrency", "1,2"])
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_clients_never_import_the_server_or_vllm() -> None:
    script = (
        "import sys, clients, clients.chat_cli, clients.load.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('server', 'vllm', 'torch', 'pydantic'))\n"
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
