"""The hung-engine rule on a fake clock: requests open and no engine step for the timeout."""

from __future__ import annotations

from server.engine.stall import StallWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Shared:
    value = 0.0


def test_open_requests_without_a_step_for_the_timeout_are_a_stall() -> None:
    clock = Clock()
    watch = StallWatch(5, clock=clock)
    watch.stepped()
    assert watch.stalled_for(busy=True) is None  # requests open from here
    clock.now += 4.9
    assert watch.stalled_for(busy=True) is None
    clock.now += 0.2
    quiet = watch.stalled_for(busy=True)
    assert quiet is not None and abs(quiet - 5.1) < 1e-6
    watch.stepped()  # a step: progress again
    assert watch.stalled_for(busy=True) is None


def test_an_idle_engine_is_not_hung_when_work_arrives() -> None:
    clock = Clock()
    watch = StallWatch(5, clock=clock)
    watch.stepped()
    clock.now += 3600  # an idle hour
    assert watch.stalled_for(busy=False) is None
    assert watch.stalled_for(busy=True) is None  # counted from now, not from the last step
    clock.now += 4
    assert watch.stalled_for(busy=True) is None
    clock.now += 2
    assert watch.stalled_for(busy=True) is not None


def test_a_step_seen_by_another_front_end_counts() -> None:
    clock, shared = Clock(), Shared()
    waiting = StallWatch(5, shared=shared, clock=clock)  # its requests only wait in the queue
    stepping = StallWatch(5, shared=shared, clock=clock)  # gets every step's stats
    assert waiting.stalled_for(busy=True) is None
    for _ in range(10):
        clock.now += 1
        stepping.stepped()
        assert waiting.stalled_for(busy=True) is None
    clock.now += 6
    assert waiting.stalled_for(busy=True) is not None


def test_timeout_0_never_stalls() -> None:
    clock = Clock()
    watch = StallWatch(0, clock=clock)
    watch.stalled_for(busy=True)
    clock.now += 1e6
    assert watch.stalled_for(busy=True) is None
