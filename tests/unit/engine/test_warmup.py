"""The warm-up's prefill sizes: every tuned size class up to what one step and one prompt hold, in
each divisibility case of the fused-MoE kernel's integer arguments; through an adapter, denser."""

from __future__ import annotations

from server.engine.warmup import adapter_sizes, prefill_sizes


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


def test_adapter_sizes_cover_every_64_tokens_of_the_eager_range_at_each_residue() -> None:
    sizes = adapter_sizes(4096, 2048)
    assert set(prefill_sizes(4096, 2048)) <= set(sizes)
    assert min(sizes) == 520 and max(sizes) == 2048  # nothing CUDA graphs cover, nothing past a step
    for n in range(576, 2048, 64):
        assert {n, n + 3, n + 4} <= set(sizes), n
    # Every size is within 64 tokens of the next one with the same residue mod 8, for each residue.
    for residue in (0, 3, 4):
        same = [s for s in sizes if s % 8 == residue]
        assert max(b - a for a, b in zip(same, same[1:], strict=False)) <= 64, residue


def test_adapter_sizes_are_coarser_past_2048_and_capped_by_the_context() -> None:
    sizes = adapter_sizes(32768, 8192)
    above = [s for s in sizes if s > 2048 and s % 8 == 0]
    assert above[:3] == [2304, 2560, 2816] and max(sizes) == 8192
    assert max(adapter_sizes(1024, 8192)) == 1023  # a prompt must leave room for one token
    assert adapter_sizes(512, 2048) == []  # all within CUDA-graph sizes
