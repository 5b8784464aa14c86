"""Sample format conversion and resampling (soxr: fast, high quality, streaming)."""

from __future__ import annotations

import math

import numpy as np
import soxr

from voiceagent.config import PcmFormat


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) -> (frames,) float32, channels averaged."""
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return audio.astype(np.float32, copy=False)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a whole mono signal (hertz to hertz)."""
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32)


def rms_db(audio: np.ndarray) -> float:
    """Root-mean-square level in dBFS (about -180 for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return 20 * math.log10(max(rms, 1e-9))


def float_to_int16_bytes(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def int16_to_mono(pcm: bytes, width: int, channels: int) -> np.ndarray:
    """Interleaved 16-bit PCM (as a Wyoming audio-chunk says it is) -> mono float32;
    a trailing partial frame is dropped. Other sample widths are a ValueError."""
    if width != 2:
        raise ValueError(f"audio of {width}-byte samples: 16-bit PCM is taken")
    channels = max(1, channels)
    usable = len(pcm) - len(pcm) % (2 * channels)
    samples = np.frombuffer(pcm[:usable], "<i2").astype(np.float32) / 32768.0
    return to_mono(samples.reshape(-1, channels)) if channels > 1 else samples


def pcm_bytes_per_frame(fmt: PcmFormat) -> int:
    """Bytes per sample frame (all channels) of a raw PCM format."""
    return fmt.channels * (2 if fmt.format == "s16le" else 4)


def pcm_decode(data: bytes, fmt: PcmFormat) -> np.ndarray:
    """Raw PCM bytes -> mono float32 at the stream's own rate."""
    dtype = "<i2" if fmt.format == "s16le" else "<f4"
    samples = np.frombuffer(data, dtype=dtype).astype(np.float32)
    if fmt.format == "s16le":
        samples /= 32768.0
    return to_mono(samples.reshape(-1, fmt.channels))


def pcm_encode(audio: np.ndarray, fmt: PcmFormat) -> bytes:
    """Mono float32 -> raw PCM bytes, the mono signal copied to every channel."""
    if fmt.channels > 1:
        audio = np.repeat(audio[:, None], fmt.channels, axis=1)
    if fmt.format == "s16le":
        return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return audio.astype("<f4").tobytes()


class StreamResampler:
    """Chunk-by-chunk resampling that keeps filter state across chunks."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._same = from_rate == to_rate
        self._stream = None if self._same else soxr.ResampleStream(
            from_rate, to_rate, 1, dtype="float32", quality="HQ"
        )

    def __call__(self, audio: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return audio.astype(np.float32, copy=False)
        return self._stream.resample_chunk(audio.astype(np.float32, copy=False), last=last)
