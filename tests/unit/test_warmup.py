"""The warm-up's prefill sizes: every tuned size class up to what one step and one prompt hold,
each as a multiple of 16 and as one that is not."""

from __future__ import annotations

from server.warmup import prefill_sizes


def test_sizes_cover_each_class_twice_within_the_step_budget() -> None:
    sizes = prefill_sizes(max_model_len=32768, max_num_batched_tokens=8192)
    assert sizes == [520, 523, 1024, 1027, 1536, 1539, 2048, 2051, 3072, 3075, 4096, 4099, 6144, 6147, 8192]
    assert any(n % 16 == 0 for n in sizes) and any(n % 16 for n in sizes)


def test_sizes_never_exceed_the_context_or_the_step() -> None:
    assert prefill_sizes(max_model_len=4096, max_num_batched_tokens=8192)[-1] == 4095
    assert max(prefill_sizes(max_model_len=32768, max_num_batched_tokens=2048)) == 2048
    assert prefill_sizes(max_model_len=1024, max_num_batched_tokens=8192) == [520, 523, 1023]


def test_no_sizes_when_nothing_is_above_the_graph_range() -> None:
    assert prefill_sizes(max_model_len=512, max_num_batched_tokens=8192) == []
