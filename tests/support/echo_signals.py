"""Signals and a stand-in canceller for the echo canceller's tests (test_echo,
test_satellite_echo_rules): speech-like noise that needs no TTS, and an inner
canceller that records how it was realigned."""

from __future__ import annotations

import numpy as np

RATE = 16000
BLOCK = 320


def speech_shaped(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with speech's spectral tilt and syllable rhythm (no espeak needed)."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum /= np.sqrt(1 + (np.fft.rfftfreq(n, 1 / RATE) / 500) ** 2)
    t = np.arange(n) / RATE
    syllables = np.clip(np.sin(2 * np.pi * 3.5 * t + 2 * np.sin(2 * np.pi * 0.7 * t)), 0, None) ** 0.7
    x = np.fft.irfft(spectrum, n) * syllables
    return (0.1 * x / np.sqrt(np.mean(x**2))).astype(np.float32)


class Recorder:
    """An inner canceller that only records how it was realigned."""

    def __init__(self) -> None:
        self.shifts: list[float] = []

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        return mic

    def set_delay_ms(self, delay_ms: int) -> None:
        pass

    def realign(self, shift_ms: float) -> None:
        self.shifts.append(shift_ms)

    @property
    def echo_path(self) -> bool | None:
        return None
