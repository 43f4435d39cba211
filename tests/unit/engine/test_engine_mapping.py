"""SamplingOptions -> vLLM SamplingParams, vLLM logprobs -> TokenLogprob, engine arguments.

Imports vllm (no engine is started).
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.logprobs import Logprob
from vllm.sampling_params import RequestOutputKind, SamplingParams

from server.config import Settings
from server.engine import vllm as vllm_engine
from server.engine.base import SamplingOptions, TokenLogprob, TopLogprob
from server.engine.vllm import _cpu_thread_binding, engine_args, to_sampling_params
from server.engine.vllm_logprobs import output_logprobs
from server.errors import InvalidRequestError

BIND_VAR = "VLLM_CPU_OMP_THREADS_BIND"

# --- to_sampling_params ----------------------------------------------------------------------------


def test_sampling_options_map_one_to_one_onto_vllm_sampling_params() -> None:
    opts = SamplingOptions(
        max_tokens=64,
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        seed=1234,
        stop=("\n\n", "###"),
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        repetition_penalty=1.1,
        logit_bias={13: -100.0, 28705: 2.5},
        logprobs=3,
        min_tokens=2,
        ignore_eos=True,
    )
    params = to_sampling_params(opts)
    assert isinstance(params, SamplingParams)
    assert params.n == 1
    assert params.output_kind == RequestOutputKind.DELTA
    assert params.max_tokens == 64
    assert params.temperature == pytest.approx(0.7)
    assert params.top_p == pytest.approx(0.9)
    assert params.top_k == 40
    assert params.min_p == pytest.approx(0.05)
    assert params.seed == 1234
    assert list(params.stop) == ["\n\n", "###"]
    assert params.presence_penalty == pytest.approx(0.5)
    assert params.frequency_penalty == pytest.approx(-0.5)
    assert params.repetition_penalty == pytest.approx(1.1)
    assert params.logit_bias == {13: -100.0, 28705: 2.5}
    assert params.logprobs == 3
    assert params.min_tokens == 2
    assert params.ignore_eos is True


def test_default_options_give_no_stop_strings_no_bias_and_no_logprobs() -> None:
    params = to_sampling_params(SamplingOptions(max_tokens=5))
    assert params.n == 1
    assert params.output_kind == RequestOutputKind.DELTA
    assert not params.stop
    assert params.logit_bias is None
    assert params.logprobs is None
    assert params.seed is None
    assert params.top_k == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"top_k": -5},
        {"repetition_penalty": 0.0},
        {"max_tokens": -1},
        {"temperature": -1.0},
        {"top_p": 0.0},
        {"min_p": 1.5},
        {"min_tokens": 10},
    ],
    ids=lambda bad: next(iter(bad)),
)
def test_values_vllm_rejects_become_invalid_request_error(bad: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"max_tokens": 5, **bad}
    with pytest.raises(InvalidRequestError) as info:
        to_sampling_params(SamplingOptions(**fields))
    assert next(iter(bad)) in info.value.message
    assert info.value.__cause__ is not None  # vLLM's own exception, chained


# --- output_logprobs -------------------------------------------------------------------------------


def output(token_ids: list[int], logprobs: list[dict[int, Logprob]] | None) -> SimpleNamespace:
    return SimpleNamespace(token_ids=token_ids, logprobs=logprobs)


def test_logprobs_map_chosen_token_and_rank_ordered_alternatives() -> None:
    step_one = {
        7: Logprob(logprob=-1.5, rank=2, decoded_token=" b"),
        9: Logprob(logprob=-0.3, rank=1, decoded_token=" a"),
        4: Logprob(logprob=-2.0, rank=3, decoded_token=" c"),
    }
    step_two = {11: Logprob(logprob=-0.1, rank=1, decoded_token="!")}
    entries = output_logprobs(output([7, 11], [step_one, step_two]), None)
    assert entries == [
        TokenLogprob(
            token_id=7,
            token=" b",
            logprob=-1.5,
            top=[
                TopLogprob(9, " a", -0.3, rank=1),
                TopLogprob(7, " b", -1.5, rank=2),
                TopLogprob(4, " c", -2.0, rank=3),
            ],
            rank=2,
        ),
        TokenLogprob(token_id=11, token="!", logprob=-0.1, top=[TopLogprob(11, "!", -0.1, rank=1)], rank=1),
    ]


def test_logprobs_missing_decoded_token_becomes_empty_string() -> None:
    entries = output_logprobs(output([3], [{3: Logprob(logprob=-0.5, rank=1, decoded_token=None)}]), None)
    assert entries is not None
    assert entries[0].token == ""
    assert entries[0].top[0].token == ""


def test_logprobs_are_none_when_not_requested() -> None:
    assert output_logprobs(output([1, 2], None), None) is None


def test_empty_delta_gives_no_logprobs_even_if_vllm_repeats_the_history() -> None:
    history = [{5: Logprob(logprob=-0.2, rank=1, decoded_token="x")}] * 3
    assert output_logprobs(output([], history), None) == []


def test_delta_uses_only_the_trailing_logprobs_for_its_tokens() -> None:
    history = [
        {5: Logprob(logprob=-0.2, rank=1, decoded_token="old")},
        {6: Logprob(logprob=-0.4, rank=1, decoded_token="new")},
    ]
    entries = output_logprobs(output([6], history), None)
    assert entries is not None
    assert [(e.token_id, e.token, e.logprob) for e in entries] == [(6, "new", -0.4)]


# --- _cpu_thread_binding and engine_args ------------------------------------------------------------


def _groups(binding: str) -> list[list[int]]:
    return [[int(c) for c in group.split(",")] for group in binding.split("|")]


def test_cpu_thread_binding_splits_available_cores_into_disjoint_groups() -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs at least two usable cores")
    groups = _groups(_cpu_thread_binding(2))
    assert len(groups) == 2
    assert all(groups)
    assert not set(groups[0]) & set(groups[1])
    assert set(groups[0]) | set(groups[1]) <= set(cores)


@pytest.mark.parametrize(
    ("cores", "tp", "expected"),
    [
        (range(8), 2, "0,1,2,3|4,5,6,7"),
        (range(8), 4, "0,1|2,3|4,5|6,7"),
        ([2, 3, 6, 7], 2, "2,3|6,7"),
        (range(5), 2, "0,1|2,3"),
        (range(4), 1, "0,1,2,3"),
    ],
)
def test_cpu_thread_binding_gives_each_rank_an_equal_share_of_the_affinity_set(
    monkeypatch: pytest.MonkeyPatch, cores: Any, tp: int, expected: str
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(cores))
    assert _cpu_thread_binding(tp) == expected


@pytest.fixture
def on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_engine, "current_platform", SimpleNamespace(is_cpu=lambda: True))
    monkeypatch.setenv(BIND_VAR, "placeholder")
    monkeypatch.delenv(BIND_VAR)  # restored to "unset" afterwards, since setenv recorded it


def test_engine_args_carry_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_engine, "current_platform", SimpleNamespace(is_cpu=lambda: False))
    settings = Settings(
        model="/models/Mixtral-8x7B",
        max_model_len=4096,
        tensor_parallel_size=2,
        enforce_eager=True,
        quantization="fp8",
        load_format="dummy",
        gpu_memory_utilization=0.8,
        max_logprobs=5,
        seed=3,
    )
    args = engine_args(settings, "/resolved/path")
    assert isinstance(args, AsyncEngineArgs)
    assert args.model == "/resolved/path"
    assert args.served_model_name == "Mixtral-8x7B"
    assert args.max_model_len == 4096
    assert args.tensor_parallel_size == 2
    assert args.enforce_eager is True
    assert args.quantization == "fp8"
    assert args.load_format == "dummy"
    assert args.gpu_memory_utilization == pytest.approx(0.8)
    assert args.max_logprobs == 5
    assert args.seed == 3
    assert args.disable_log_stats is True


def test_stream_interval_reaches_the_engine_and_defaults_to_one_token_per_event() -> None:
    assert engine_args(Settings(), "/m").stream_interval == 1
    assert engine_args(Settings(stream_interval=8), "/m").stream_interval == 8
    with pytest.raises(ValueError, match="stream_interval"):
        Settings(stream_interval=0)


def test_engine_args_on_cpu_default_the_kv_cache_to_one_gib(on_cpu: None) -> None:
    assert engine_args(Settings(), "/m").kv_cache_memory_bytes == 1 << 30
    explicit = Settings(kv_cache_memory_bytes=1 << 28)
    assert engine_args(explicit, "/m").kv_cache_memory_bytes == 1 << 28


def test_engine_args_on_cpu_with_tensor_parallel_bind_threads_per_rank(
    on_cpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    engine_args(Settings(tensor_parallel_size=2), "/m")
    assert os.environ[BIND_VAR] == "0,1|2,3"


def test_engine_args_on_cpu_keep_an_operators_thread_binding(
    on_cpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BIND_VAR, "0-3|4-7")
    engine_args(Settings(tensor_parallel_size=2), "/m")
    assert os.environ[BIND_VAR] == "0-3|4-7"


def test_engine_args_on_cpu_without_tensor_parallel_set_no_binding(on_cpu: None) -> None:
    engine_args(Settings(tensor_parallel_size=1), "/m")
    assert BIND_VAR not in os.environ
