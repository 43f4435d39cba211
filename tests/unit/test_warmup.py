"""The warm-up's prefill sizes: every tuned size class up to what one step and one prompt hold, in
each divisibility case of the fused-MoE kernel's integer arguments."""

from __future__ import annotations

from server.warmup import prefill_sizes


def test_sizes_cover_each_class_in_each_divisibility_case() -> None:
    sizes = prefill_sizes(max_model_len=32768, max_num_batched_tokens=8192)
    assert sizes[:6] == [520, 523, 524, 1024, 1027, 1028]
    assert sizes[-1] == 8192 and len(sizes) == 3 * 7 + 1
    for size_class in (1024, 1536, 2048, 3072, 4096, 6144):
        group = [n for n in sizes if size_class <= n < size_class + 8]
        num_valid_tokens = [2 * n for n in group]  # top-2
        em = [2 * n + 8 * 127 for n in group]  # 8 experts, BLOCK_SIZE_M 128
        assert {v % 16 == 0 for v in num_valid_tokens} == {True, False}
        assert {v % 16 == 0 for v in em} == {True, False}


def test_sizes_never_exceed_the_context_or_the_step() -> None:
    assert prefill_sizes(max_model_len=4096, max_num_batched_tokens=8192)[-1] == 4095
    assert max(prefill_sizes(max_model_len=32768, max_num_batched_tokens=2048)) == 2048
    assert prefill_sizes(max_model_len=1024, max_num_batched_tokens=8192) == [520, 523, 524, 1023]


def test_no_sizes_when_nothing_is_above_the_graph_range() -> None:
    assert prefill_sizes(max_model_len=512, max_num_batched_tokens=8192) == []
