"""usage's cached_tokens: a prompt's prefix-cache hits count once, from its first choice."""

from __future__ import annotations

from server.engine.base import Delta
from server.openai.bodies.common import CacheHits, Counts


def hits(cached: int, ids: int = 1) -> Delta:
    return Delta("x", [7] * ids, num_cached_prompt_tokens=cached)


def test_only_the_first_choice_of_each_prompt_counts() -> None:
    cache = CacheHits(n=2, prompts=2)  # choices 0, 1 answer prompt 0; choices 2, 3 prompt 1
    for index, cached in [(1, 99), (0, 16), (3, 77), (2, 32)]:
        cache.note(index, hits(cached))
    assert cache.hits == [16, 32]
    assert cache.total() == 48


def test_the_latest_count_of_the_first_choice_wins() -> None:
    cache = CacheHits(n=1, prompts=1)
    cache.note(0, hits(0))
    cache.note(0, hits(16))
    assert cache.total() == 16


def test_continuous_usage_is_the_choice_s_own_prompt_and_tokens_so_far() -> None:
    counts = Counts([5, 9], n=2)
    counts.note(2, hits(4))
    counts.completion[3] += 3
    assert counts.usage_of(3) == {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
