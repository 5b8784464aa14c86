"""Stalls of a duplex stream, told from the callbacks' timing alone."""

import pytest

from voiceagent.rules.stalls import Realign, StallWatch

BLOCK_MS = 20.0


def feed(watch: StallWatch, blocks: list[tuple[float | None, float, bool]]) -> list[Realign]:
    return [r for gap, latency, xrun in blocks if (r := watch.observe(gap, latency, xrun)) is not None]


def steady(n: int, latency_ms: float) -> list[tuple[float | None, float, bool]]:
    # PulseAudio's ordinary jitter: a late callback, then a quick one
    return [(40.0 if i % 7 == 3 else 0.0 if i % 7 == 4 else BLOCK_MS, latency_ms, False) for i in range(n)]


def test_jitter_is_no_stall():
    watch = StallWatch(BLOCK_MS)
    assert feed(watch, [(None, 70.0, False)] + steady(200, 70.0)) == []


def test_a_stall_is_measured_by_the_latency_on_the_first_callback_after_it():
    """Measured on PulseAudio: a 150 ms SIGSTOP gave a 173 ms gap, the latency
    went from 81 to 178 ms on the first callback after it and to 223 ms as the
    output refilled, and the echo moved by 130 ms: the first reading errs low."""
    watch = StallWatch(BLOCK_MS)
    feed(watch, steady(50, 81.0))
    assert watch.observe(173.0, 178.0, False) == Realign(shift_ms=97.0, stall_ms=153.0, measured=True)
    assert feed(watch, [(BLOCK_MS, 200.0, False), (BLOCK_MS, 223.0, False)] + steady(100, 223.0)) == []


def test_a_stall_while_the_output_refills_is_measured_from_the_low_reading():
    watch = StallWatch(BLOCK_MS)
    feed(watch, steady(20, 70.0))
    first = watch.observe(131.0, 100.0, False)  # read low: the output had drained
    feed(watch, [(BLOCK_MS, 130.0, False)] * 2)  # refilling
    second = watch.observe(131.0, 230.0, False)
    assert first and second
    # from the refilling readings: what was realigned never exceeds what the
    # latency says in all (160 ms), however low the first reading was
    assert first.shift_ms + second.shift_ms <= 230.0 - 70.0
    assert second.shift_ms == pytest.approx(230.0 - 130.0)


def test_without_a_reported_latency_a_stall_says_only_that_it_happened():
    watch = StallWatch(BLOCK_MS)
    feed(watch, steady(50, 0.0))
    assert watch.observe(324.0, 0.0, False) == Realign(0.0, 304.0, measured=False)
    assert feed(watch, steady(50, 0.0)) == []


def test_an_underflow_without_a_gap_counts_if_the_latency_moved():
    watch = StallWatch(BLOCK_MS)
    feed(watch, steady(20, 70.0))
    assert watch.observe(BLOCK_MS, 100.0, True) == Realign(30.0, 0.0, measured=True)
    feed(watch, steady(20, 100.0))
    assert watch.observe(BLOCK_MS, 102.0, True) is None  # moved nothing to speak of
    assert feed(watch, steady(30, 101.0)) == []
