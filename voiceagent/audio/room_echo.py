"""A simulated echo: the loudspeaker-to-microphone path of a small room.

``RoomEcho`` is the other side of echo cancellation: a simulated
loudspeaker-to-microphone path for ``voiceagent run --echo DELAY_MS:GAIN_DB``
and for tests, so that echo handling can be exercised without a room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EchoSpec:
    """A simulated echo path, as given to ``--echo DELAY_MS:GAIN_DB``."""

    delay_ms: float
    """Milliseconds from a sample being played to its echo at the mic (0..1000)."""
    gain_db: float
    """Decibels of the direct path from loudspeaker to mic (-60..+12)."""


def parse_echo_spec(text: str) -> EchoSpec:
    """``"40:-6"`` -> ``EchoSpec(40.0, -6.0)``; ValueError with the reason otherwise."""
    usage = "expected DELAY_MS:GAIN_DB, e.g. 40:-6"
    parts = text.strip().split(":")
    if len(parts) != 2:
        raise ValueError(f"bad echo spec {text!r}: {usage}")
    try:
        delay_ms, gain_db = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"bad echo spec {text!r}: {usage}") from None
    if not 0 <= delay_ms <= 1000:
        raise ValueError(f"bad echo spec {text!r}: delay must be 0..1000 ms")
    if not -60 <= gain_db <= 12:
        raise ValueError(f"bad echo spec {text!r}: gain must be -60..+12 dB")
    return EchoSpec(delay_ms, gain_db)


class RoomEcho:
    """Simulated echo path for ``voiceagent run --echo DELAY_MS:GAIN_DB``: the
    program's own output comes back into its input after ``delay_ms`` through a
    short room response, at ``gain_db``.

    The response is a direct path (one tap of ``gain_db`` at ``delay_ms``) and a
    diffuse tail of reflections: seeded white noise under an exponential decay
    with an RT60 of 200 ms, cut at 120 ms, starting 2 ms after the direct path,
    carrying half the direct path's energy: a small, fairly dry room.
    """

    RT60_S = 0.2
    TAIL_S = 0.12
    TAIL_START_S = 0.002
    TAIL_ENERGY = 0.5
    """Energy of the tail relative to the direct path's."""

    def __init__(self, delay_ms: float, gain_db: float, sample_rate: int, seed: int = 0) -> None:
        self.spec = EchoSpec(delay_ms, gain_db)
        self.sample_rate = sample_rate
        self.delay = int(round(delay_ms * sample_rate / 1000))
        """Samples from played to the direct path's arrival."""
        gain = 10 ** (gain_db / 20)
        n = int(self.TAIL_S * sample_rate)
        t = np.arange(n) / sample_rate
        tail = np.random.default_rng(seed).standard_normal(n) * np.exp(-6.9078 * t / self.RT60_S)
        tail[: int(self.TAIL_START_S * sample_rate)] = 0.0
        tail *= np.sqrt(self.TAIL_ENERGY / np.sum(tail**2))
        # The direct path is the loudest tap, so gain_db is the response's peak.
        np.clip(tail, -0.9, 0.9, out=tail)
        tail[0] = 1.0
        self.response = (gain * tail).astype(np.float32)
        """Taps from the direct path on; the full response is ``delay`` zeros, then these."""
        self._history = np.zeros(self.delay + self.response.size - 1, np.float32)

    def mix(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        """``played`` is what the sink played during this block; returns mic + echo
        (echo of everything played so far that arrives in this block). Stateful,
        streaming, block by block."""
        if mic.shape != played.shape:
            raise ValueError(f"mic and played differ in shape: {mic.shape} and {played.shape}")
        buf = np.concatenate([self._history, played.astype(np.float32, copy=False)])
        self._history = buf[buf.size - self._history.size :]
        # buf spans [t0 - delay - taps + 1, t0 + n): the echo of this block needs
        # the played samples up to delay before its last one.
        seg = buf[: buf.size - self.delay]
        echo = np.convolve(seg, self.response, mode="valid")
        return (mic + echo).astype(np.float32)
