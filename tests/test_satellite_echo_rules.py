"""The echo canceller's rules for a Wyoming satellite's room (fast, no models):
each reply is played by a speaker program started anew, so its echo comes at a
delay of its own, and later than a sound card's. The real satellite is in
tests/test_wyoming_satellite_echo.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.echo_signals import BLOCK, RATE, Recorder, speech_shaped
from voiceagent.audio.echo import EchoGatedCanceller, RoomEcho, WebRtcEchoCanceller
from voiceagent.transports.base import SATELLITE_MAX_DELAY_MS


def satellite_gate(inner) -> EchoGatedCanceller:  # type: ignore[no-untyped-def]
    """As ``make_echo_canceller(cfg, network=True)`` makes it."""
    late_s = SATELLITE_MAX_DELAY_MS / 1000
    return EchoGatedCanceller(inner, RATE, max_delay_ms=SATELLITE_MAX_DELAY_MS,
                              first_verdict_s=late_s + 0.4, tail_s=late_s + 0.3)


def energy(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) + 1e-20


def reply_in_room(seconds: float, delay_ms: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reply and its echo ``delay_ms`` later, with 0.5 s of silence after it."""
    played = np.concatenate([speech_shaped(seconds, seed), np.zeros(RATE // 2, np.float32)])
    noise = (10 ** (-70 / 20) * np.random.default_rng(seed).standard_normal(played.size)).astype(np.float32)
    return played, RoomEcho(delay_ms, -6, RATE).mix(noise, played)


@pytest.mark.parametrize("delay_ms", [360, 650])
def test_a_late_echo_on_the_first_reply_is_found_not_judged_absent(delay_ms: float) -> None:
    """Measured with the satellite: with the echo 360 ms late, 0.4 s of the
    first reply was judged to have none, and the echo then cut the reply."""
    played, mic = reply_in_room(2.5, delay_ms, 0)
    gated = satellite_gate(Recorder())
    for k in range(played.size // BLOCK):
        gated.process(mic[k * BLOCK : (k + 1) * BLOCK], played[k * BLOCK : (k + 1) * BLOCK])
        assert gated.cancelling, f"judged no echo at {(k + 1) * BLOCK / RATE:.2f} s"
    assert gated.delay_ms == pytest.approx(delay_ms, abs=3)


def test_the_sound_card_gate_still_judges_the_first_reply_within_half_a_second() -> None:
    played, _ = reply_in_room(1.0, 0, 0)
    gated = EchoGatedCanceller(Recorder(), RATE)
    for k in range(int(0.45 * RATE) // BLOCK):
        gated.process(np.zeros(BLOCK, np.float32), played[k * BLOCK : (k + 1) * BLOCK])
    assert not gated.cancelling


def test_each_new_echo_path_restarts_aec3_with_a_hint_below_the_delays_found() -> None:
    """Reply 1's echo at 246 ms, reply 2's at 192 ms (seen with the satellite:
    its speaker started sooner): an AEC3 that stays converged on reply 1 took
    1.2 dB off reply 2; restarted for it, with its hint below, most of it."""
    first, first_mic = reply_in_room(3.0, 246, 1)
    second, second_mic = reply_in_room(3.0, 192, 2)

    def reduction(restart: bool) -> float:
        gated = satellite_gate(WebRtcEchoCanceller(RATE))
        out = []
        for k, (played, mic) in enumerate(((first, first_mic), (second, second_mic))):
            if restart:
                gated.new_echo_path()
            if k == 1:
                assert restart or gated.delay_ms == pytest.approx(246, abs=3)
                if restart:
                    assert gated.inner.delay_ms == 246 - gated.HINT_MARGIN_MS
            out = [gated.process(mic[i : i + BLOCK], played[i : i + BLOCK]) for i in range(0, mic.size, BLOCK)]
        cleaned = np.concatenate(out)
        after = slice(RATE // 2, 3 * RATE)  # after its first half second
        return 10 * np.log10(energy(second_mic[after]) / energy(cleaned[after]))

    assert reduction(restart=True) > 25.0
    assert reduction(restart=False) < 15.0


def test_a_new_echo_path_looks_for_the_delay_on_its_own_audio() -> None:
    gated = satellite_gate(WebRtcEchoCanceller(RATE))
    played, mic = reply_in_room(2.0, 240, 3)
    for i in range(0, mic.size, BLOCK):
        gated.process(mic[i : i + BLOCK], played[i : i + BLOCK])
    assert gated.delay_ms == pytest.approx(240, abs=3)
    gated.new_echo_path()
    assert gated.delay_ms is None and gated.aligned_ms is None
    assert gated.cancelling  # still cancelling: the echo is expected again
