"""Frame-level voice activity detection with webrtcvad."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from voiceagent.audio.convert import float_to_int16_bytes


class SpeechDetector(Protocol):
    def is_speech(self, frame: np.ndarray) -> bool:
        """True if this mono float32 frame contains speech."""
        ...


class WebRtcVad:
    def __init__(self, aggressiveness: int, sample_rate: int, frame_ms: int) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)
        self._rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(self._vad.is_speech(float_to_int16_bytes(frame), self._rate))
