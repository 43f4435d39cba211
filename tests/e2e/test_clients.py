"""Our clients against a real `mixtral-serve` process: the Python client (sync and async), the
`mixtral-chat` terminal chat and the `mixtral-load` load tester, each as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clients import APIError, AsyncClient, Client, Delta
from clients.chat_cli import ChatSession

HELLO = [{"role": "user", "content": "Hello there"}]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server_url(shared_server_url: str) -> str:
    return shared_server_url


@pytest.fixture(scope="module")
def client(server_url: str) -> Iterator[Client]:
    with Client(server_url) as c:
        yield c


def script(name: str) -> str:
    """The console script installed beside this interpreter."""
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed (pip install -e .)"
    return path


def test_client_finds_the_model_and_chats(client: Client) -> None:
    assert client.model() == "tiny-mixtral"
    answer = client.chat(HELLO, max_tokens=8, temperature=0)
    assert answer.text and answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 8


def test_client_stream_is_the_same_text_as_the_whole_answer(client: Client) -> None:
    whole = client.chat(HELLO, max_tokens=12, temperature=0)
    deltas = list(client.chat_stream(HELLO, max_tokens=12, temperature=0))
    assert "".join(d.text for d in deltas) == whole.text
    assert len([d for d in deltas if d.text]) > 1  # arrived in pieces
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens == 12
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["length"]


def test_client_completions_whole_and_streamed(client: Client) -> None:
    whole = client.complete("Once upon a time", max_tokens=6, temperature=0)
    streamed = "".join(
        d.text for d in client.complete_stream("Once upon a time", max_tokens=6, temperature=0)
    )
    assert whole.text and streamed == whole.text


# LINE SEPARATOR, PARAGRAPH SEPARATOR, NEXT LINE: text in JSON, line ends to generic line readers.
SEPARATORS = "one\u2028two\u2029three\u0085four"


def test_both_clients_stream_text_that_holds_unicode_line_separators(server_url: str, client: Client) -> None:
    """The echo extensions send the prompt (completions) or the final assistant message (chat) back
    in the first chunk, so the separators really cross the wire; a clients' line reader that split
    at them (httpx's) raised JSONDecodeError. One generated token each: only the echo matters."""
    prompt = {"model": client.model(), "prompt": SEPARATORS, "echo": True, "max_tokens": 1, "stream": True}
    body = httpx.post(f"{server_url}/v1/completions", json=prompt, timeout=60).content
    assert all(c.encode() in body for c in "\u2028\u2029\u0085")  # raw in the JSON, not escaped
    conversation = [*HELLO, {"role": "assistant", "content": SEPARATORS}]
    chat = {"echo": True, "continue_final_message": True, "max_tokens": 1}

    def texts(deltas: list[Delta]) -> str:
        return "".join(d.text for d in deltas)

    sync = [
        texts(list(client.complete_stream(SEPARATORS, echo=True, max_tokens=1))),
        texts(list(client.chat_stream(conversation, **chat))),
    ]

    async def run() -> list[str]:
        async with AsyncClient(server_url) as aclient:
            return [
                texts([d async for d in aclient.complete_stream(SEPARATORS, echo=True, max_tokens=1)]),
                texts([d async for d in aclient.chat_stream(conversation, **chat)]),
            ]

    for text in [*sync, *asyncio.run(run())]:
        assert text.startswith(SEPARATORS)


def test_client_raises_the_servers_error_without_retrying_it(server_url: str) -> None:
    with Client(server_url, model="gpt-4o") as wrong, pytest.raises(APIError) as caught:
        wrong.chat(HELLO, max_tokens=4)
    assert (caught.value.status, caught.value.code, caught.value.param) == (404, "model_not_found", "model")


def test_async_client_streams_concurrently(server_url: str) -> None:
    async def run() -> tuple[list[str], str]:
        async with AsyncClient(server_url) as client:

            async def one(i: int) -> str:
                messages = [{"role": "user", "content": f"Story {i}"}]
                return "".join([d.text async for d in client.chat_stream(messages, max_tokens=10)])

            texts = await asyncio.gather(*(one(i) for i in range(4)))
            whole = await client.chat(HELLO, max_tokens=4)
            return list(texts), whole.text

    texts, whole = asyncio.run(run())
    assert len(texts) == 4 and all(texts) and whole


def test_chat_session_sends_the_whole_conversation_and_reset_clears_it(client: Client) -> None:
    session = ChatSession(client, "Be brief.", max_tokens=6, temperature=0)
    pieces: list[str] = []
    first = session.ask("Hello", pieces.append)
    second = session.ask("And then?", pieces.append)
    assert [m["role"] for m in session.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert first.tokens == second.tokens == 6 and first.tokens_per_s > 0
    assert first.prompt_tokens is not None and second.prompt_tokens is not None
    assert second.prompt_tokens > first.prompt_tokens + 6  # the first turn went along with the second
    assert "".join(pieces) == session.messages[2]["content"] + session.messages[4]["content"]
    session.reset()
    assert session.messages == [{"role": "system", "content": "Be brief."}]


def test_mixtral_chat_streams_answers_and_obeys_reset_and_exit(server_url: str) -> None:
    done = subprocess.run(
        [script("mixtral-chat"), "--base-url", server_url, "--max-tokens", "8", "--system", "Be brief."],
        input="Hello\nTell me more\n/reset\nAgain\n/exit\nnever sent\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("chatting with tiny-mixtral")
    assert out.count("[8 tokens in ") == 3 and out.count(" tok/s") == 3
    assert "(conversation cleared)" in out
    assert out.count("assistant> ") == 3  # "never sent" came after /exit


def run_load(*args: str, out: Path) -> dict[str, object]:
    done = subprocess.run(
        [script("mixtral-load"), *args, "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary: dict[str, object] = json.loads((out / "summary.json").read_text())
    return summary


def test_mixtral_load_concurrency_sweep_writes_summary_records_and_plots(
    server_url: str, tmp_path: Path
) -> None:
    flags = ["--base-url", server_url, "--concurrency", "1,3", "--num-prompts", "6"]
    summary = run_load(*flags, "--input-len", "24", "--output-len", "8", "--ignore-eos", out=tmp_path)
    points = summary["points"]
    assert isinstance(points, list) and [p["load"] for p in points] == [
        {"mode": "concurrency", "value": 1.0},
        {"mode": "concurrency", "value": 3.0},
    ]
    for p in points:
        assert (p["completed"], p["failed"], p["output_tokens"]) == (6, 0, 48)  # ignore_eos: exact
        assert p["output_tokens_per_s"] > 0 and p["requests_per_s"] > 0
        assert 0 < p["ttft_ms"]["p50"] <= p["ttft_ms"]["p99"] <= p["e2e_ms"]["p99"]
        assert p["itl_ms"]["p50"] > 0 and p["tpot_ms"]["p50"] > 0
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all(r["error"] is None and r["itl_s"] for r in records)
    assert all(r["prompt_tokens"] >= 24 for r in records)  # the prompt plus the chat template
    for name in ("throughput.png", "latency.png", "ttft_cdf.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


def test_mixtral_load_open_loop_rates_and_jsonl_conversations(server_url: str, tmp_path: Path) -> None:
    dataset = tmp_path / "convs.jsonl"
    dataset.write_text(
        json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]})
        + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "Name three colours."}]})
        + "\n"
    )
    flags = ["--base-url", server_url, "--rate", "20,inf", "--num-prompts", "5", "--dataset", str(dataset)]
    summary = run_load(*flags, "--output-len", "4", "--ignore-eos", "--no-plots", out=tmp_path / "out")
    points = summary["points"]
    assert isinstance(points, list)
    assert [p["load"]["mode"] for p in points] == ["rate", "rate"]
    assert all(p["completed"] == 5 and p["output_tokens"] == 20 for p in points)


def test_mixtral_load_counts_errors_by_kind(server_url: str, tmp_path: Path) -> None:
    flags = ["--base-url", server_url, "--model", "gpt-4o", "--concurrency", "2", "--num-prompts", "4"]
    summary = run_load(*flags, "--input-len", "8", "--output-len", "4", "--no-plots", out=tmp_path)
    points = summary["points"]
    assert isinstance(points, list)
    assert (points[0]["completed"], points[0]["failed"], points[0]["errors"]) == (0, 4, {"http_404": 4})


def test_mixtral_load_slo_mode_finds_the_highest_load_that_meets_it(server_url: str, tmp_path: Path) -> None:
    flags = ["--base-url", server_url, "--num-prompts", "4", "--input-len", "16", "--output-len", "4"]
    easy = run_load(*flags, "--slo", "ttft.p99<60s", "--slo-max", "4", "--no-plots", out=tmp_path / "easy")
    assert easy["slo"] == {
        "objectives": ["ttft p99 < 60000 ms"],
        "max_error_rate": 0.0,
        "search": "concurrency",
        "best": 4.0,
        "measured": {"1": True, "2": True, "4": True},
    }
    impossible = run_load(*flags, "--slo", "ttft.p50<0.001ms", "--no-plots", out=tmp_path / "never")
    assert isinstance(impossible["slo"], dict) and impossible["slo"]["best"] is None


def test_load_tester_runs_as_a_module_from_a_checkout(server_url: str, tmp_path: Path) -> None:
    """How bench/tools/load_vs_vllm.py starts it on a GPU host where the project is not installed."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clients.load",
            "--base-url",
            server_url,
            "--num-prompts",
            "2",
            "--input-len",
            "8",
        ]
        + ["--output-len", "2", "--no-progress", "--no-plots"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout[done.stdout.index("{") :])["points"][0]["completed"] == 2


def test_mixtral_load_spreads_a_point_over_worker_processes(server_url: str, tmp_path: Path) -> None:
    flags = ["--base-url", server_url, "--concurrency", "3", "--num-prompts", "7", "--workers", "2"]
    summary = run_load(
        *flags, "--input-len", "16", "--output-len", "4", "--ignore-eos", "--no-plots", out=tmp_path
    )
    points = summary["points"]
    assert isinstance(points, list)
    assert (points[0]["completed"], points[0]["failed"], points[0]["output_tokens"]) == (7, 0, 28)
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(7))
    assert max(r["start_s"] for r in records) < points[0]["duration_s"]
