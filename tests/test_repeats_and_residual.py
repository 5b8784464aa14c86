"""Pure rules: recognition loops (``rules.repeats``) and the measured echo margin
(``rules.echo_residual``)."""

from __future__ import annotations

import pytest

from voiceagent.rules.echo_residual import MIN_FRAMES, EchoResidual
from voiceagent.rules.repeats import cut_loop, find_loop


@pytest.mark.parametrize(("text", "cut"), [
    # real tiny.en loops on the fitted window
    ("10 of clubs 10 of clubs 10 of clubs 10 of", "10 of clubs"),
    ("4 queen of clothes 4 queen of clothes 4 queen of clothes 4 queen of clothes 4", "4 queen of clothes"),
    ("Turn on the office lights. Turn on the office lights. Turn on the office lights. Turn on the",
     "Turn on the office lights."),
    ("Yes, turn it off. Turn it off. Turn it off.", "Yes, turn it off."),
])
def test_loops_are_found_and_cut_to_one_copy(text, cut):
    assert find_loop(text) is not None
    assert cut_loop(text) == cut


@pytest.mark.parametrize("text", [
    "5 5", "no no no", "Go forward 10 meters.", "I said yes, yes I did.",
    "The expression goes 6 times 10 equals 60, not 600,000.", "ten of clubs ten of hearts", "",
    "bye bye", "very very very good",
])
def test_people_repeating_themselves_is_no_loop(text):
    assert find_loop(text) is None
    assert cut_loop(text) == text


def test_the_configured_margin_applies_until_the_echo_is_measured():
    r = EchoResidual(-25.0)
    for _ in range(MIN_FRAMES - 1):
        r.observe(-60.0, -13.0)
    assert r.margin_db() == -25.0


def test_no_echo_path_lowers_the_margin_to_the_noise_floor():
    r = EchoResidual(-25.0)
    for _ in range(MIN_FRAMES):
        r.observe(-60.0, -13.0)  # the input is room noise, 47 dB below the reply
    assert r.margin_db() == pytest.approx(-39.0)  # 8 dB above what was measured
    # a user 22 dB below the reply now stands out of it
    assert -13.0 + r.margin_db() < -35.0


def test_a_canceller_that_leaves_much_echo_never_makes_it_stricter_than_configured():
    r = EchoResidual(-25.0)
    for _ in range(MIN_FRAMES):
        r.observe(-20.0, -13.0)
    assert r.margin_db() == -25.0


def test_the_margin_follows_the_loud_moments_of_the_residual():
    r = EchoResidual(-25.0)
    for i in range(100):
        r.observe(-60.0 if i % 10 else -53.0, -13.0)  # the echo's peaks: 40 dB below the reply
    assert r.margin_db() == pytest.approx(-32.0)
    r.reset()
    assert r.margin_db() == -25.0
