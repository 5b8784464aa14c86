"""Cancelling the assistant's own voice in the microphone: the ``EchoCanceller``
protocol, and its two implementations.

In a room the microphone hears the loudspeaker. Without cancellation the VAD
takes the assistant's reply for the user speaking, and the assistant barges in
on itself. ``WebRtcEchoCanceller`` runs WebRTC's AEC3 (through the ``livekit``
wheel) on every captured block, with the block that was being played while it was
captured as the reference. ``NoEchoCanceller`` is for headphones.

Whether AEC3's output or the raw microphone is used is decided by
``audio.echo.EchoGatedCanceller``, which looks for an echo path first.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from voiceagent.audio.convert import float_to_int16_bytes
from voiceagent.errors import Stage, StageError

logger = logging.getLogger(__name__)

FRAME_MS = 10
"""Milliseconds per frame that AEC3 takes, whatever the block size."""


class EchoCanceller(Protocol):
    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        """Remove the echo of ``played`` from ``mic``.

        mic: float32 mono block just captured (any length that is a multiple of
        10 ms at the rate; in practice 20 ms = 320 samples at 16 kHz).
        played: float32 block of the same length that the sink was playing while
        ``mic`` was captured (exactly what was sent to the output, same rate). Its
        echo reaches the mic later by the acoustic/device delay.
        Returns the cleaned float32 block, same length.
        """
        ...

    def set_delay_ms(self, delay_ms: int) -> None:
        """Milliseconds from a block being played to its echo reaching the mic,
        beyond the block alignment: a hint, best given before anything plays."""
        ...

    def realign(self, shift_ms: float) -> None:
        """The echo now reaches the mic ``shift_ms`` later than it did (negative:
        sooner), from the next block on: the audio stream stalled or ran dry,
        and its input now lags its output by that much more."""
        ...

    @property
    def echo_path(self) -> bool | None:
        """Is the reply heard in the microphone? True: an echo was found; False:
        none can be (no loudspeaker, or none found in seconds of playback); None:
        not known."""
        ...


class NoEchoCanceller:
    """Leaves the microphone signal alone (headphones, or no loudspeaker)."""

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        return mic

    def set_delay_ms(self, delay_ms: int) -> None:
        pass

    def realign(self, shift_ms: float) -> None:
        pass

    @property
    def echo_path(self) -> bool | None:
        return False  # echo.canceller: none is for headphones


class WebRtcEchoCanceller:
    """WebRTC AEC3 through ``livekit.rtc.AudioProcessingModule``, 10 ms at a time.

    Measured on piper speech through ``RoomEcho`` at 16 kHz
    (``benchmarks/echo_reduction.py``): after the first second the echo is
    removed down to the mic's noise floor whatever the delay (40 to 400 ms) and
    whatever the hint, as AEC3 finds the delay itself. The hint only matters in
    that first second, and only if it is not too high: 0 is right up to about
    120 ms, the true delay (or a little less) is best, and a hint 100 ms too high
    leaks more than 0 does. The output lags the input by 8 ms (AEC3's framing).

    A jump in the delay once it has converged (a stalled stream: 100-300 ms)
    costs it much more: measured on speech-shaped noise through ``RoomEcho``, it
    leaks (3 dB of echo reduction instead of 30) for 1.5-2 s of continuous
    playback, and over a reply that pauses at each suspected barge-in it did
    not recover in 10 s. So ``realign`` keeps the delay AEC3 sees as it was, by
    delaying the reference that much more (or less) before it goes in.
    """

    def __init__(
        self,
        sample_rate: int,
        delay_ms: int = 0,
        noise_suppression: bool = False,
        high_pass: bool = True,
    ) -> None:
        """``sample_rate`` in hertz (a whole number of samples per 10 ms);
        ``delay_ms``: see ``set_delay_ms``; ``high_pass``: a high-pass (below ~80 Hz)
        filter, which AEC3 applies anyway while it is on (measured: the output
        is the same either way)."""
        try:
            from livekit import rtc
        except ImportError:
            raise StageError(
                "aec",
                "echo cancellation needs the livekit package (WebRTC AEC3)",
                "pip install livekit, or run without echo cancellation",
            ) from None
        if sample_rate % (1000 // FRAME_MS) != 0:
            raise ValueError(f"sample rate {sample_rate} Hz has no whole 10 ms frame")
        self._rtc = rtc
        self.sample_rate = sample_rate
        self.frame = sample_rate * FRAME_MS // 1000
        """Samples per 10 ms frame."""
        self.delay_ms = _checked_delay(delay_ms)
        self._noise_suppression = noise_suppression
        self._high_pass = high_pass
        self._far_seen = False
        """Whether any played sound has gone in: AEC3 has started to learn."""
        self._pending = np.zeros(0, np.float32)
        """Played samples held back from AEC3 by ``realign``: its reference lags
        what was played by their number."""
        self._apm = self._new_apm()
        logger.info(
            "AEC: WebRTC AEC3 at %d Hz, delay hint %d ms, noise suppression %s",
            sample_rate, self.delay_ms, "on" if noise_suppression else "off",
        )

    def _new_apm(self):  # type: ignore[no-untyped-def]
        try:
            return self._rtc.AudioProcessingModule(
                echo_cancellation=True,
                noise_suppression=self._noise_suppression,
                high_pass_filter=self._high_pass,
                auto_gain_control=False,
            )
        except Exception as err:
            raise StageError(Stage.AEC, f"cannot start WebRTC audio processing: {err}") from err

    def set_delay_ms(self, delay_ms: int) -> None:
        """Milliseconds from a block being played to its echo reaching the mic,
        beyond the duplex alignment (device buffers plus the acoustic path).

        A hint for AEC3's start. It is passed with every frame as the API
        requires, but AEC3 reads only the value it gets with its first frame
        (measured: changing it 20 ms or 1 s later changes nothing). So until
        anything has been played, a new hint starts a fresh AEC3, which has
        learnt nothing yet; after that it only logs. Err low rather than high.
        """
        if _checked_delay(delay_ms) == self.delay_ms:
            return
        self.delay_ms = int(delay_ms)
        if self._far_seen:
            logger.debug("AEC delay hint %d ms comes too late: AEC3 tracks the delay itself now", delay_ms)
        else:
            self._apm = self._new_apm()

    def realign(self, shift_ms: float) -> None:
        """Delay the reference by ``shift_ms`` more, so that AEC3 keeps the echo
        path it has learnt.

        Held back with silence: when the stream stalled its output ran dry, so
        the input captured there holds no echo of anything. A reference that
        would have to lead what was played (the echo came sooner than the
        reference can) cannot be made: then AEC3 starts afresh.
        """
        lag = self._pending.size + round(shift_ms * self.sample_rate / 1000)
        if lag < 0 or lag > self.sample_rate:  # more than the 1 s a delay may be
            logger.info("AEC: the echo path moved %+.0f ms, out of the reference's reach: AEC3 starts afresh",
                        shift_ms)
            self._pending = np.zeros(0, np.float32)
            self._far_seen = False
            self._apm = self._new_apm()
        elif lag > self._pending.size:
            self._pending = np.concatenate([np.zeros(lag - self._pending.size, np.float32), self._pending])
        else:
            self._pending = self._pending[self._pending.size - lag :]

    def restart(self, delay_ms: int) -> None:
        """Start AEC3 afresh, with ``delay_ms`` as its hint: the echo path is a
        new one from the next block on (a network client that starts its speaker
        anew for each reply; only ``EchoGatedCanceller.new_echo_path`` calls it).

        What it learnt of the old path is of no use then: a converged AEC3 whose
        echo comes sooner than the delay it has learnt leaks for seconds, and the
        hint is read only with a fresh AEC3's first frame (``set_delay_ms``).
        """
        self.delay_ms = _checked_delay(delay_ms)
        self._pending = np.zeros(0, np.float32)
        self._far_seen = False
        self._apm = self._new_apm()

    @property
    def reference_lag_ms(self) -> float:
        """Milliseconds by which ``realign`` delays the reference."""
        return self._pending.size * 1000 / self.sample_rate

    @property
    def echo_path(self) -> bool | None:
        return None  # AEC3 alone does not say

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        if mic.shape != played.shape or mic.ndim != 1:
            raise ValueError(
                f"mic and played must be mono blocks of one length, got {mic.shape} and {played.shape}"
            )
        if mic.size % self.frame:
            raise ValueError(f"block of {mic.size} samples is not a whole number of 10 ms frames")
        if not self._far_seen and played.any():
            self._far_seen = True
        if self._pending.size:
            held = np.concatenate([self._pending, played])
            played, self._pending = held[: mic.size], held[mic.size :]
        rtc, n, rate = self._rtc, self.frame, self.sample_rate
        near = bytearray(float_to_int16_bytes(mic))
        far = float_to_int16_bytes(played)
        out = np.empty(mic.size, np.float32)
        step = 2 * n  # bytes per frame
        try:
            # Interleaved per 10 ms, as a sound card delivers them: the reference
            # frame that played while a mic frame was captured goes in first.
            for i in range(0, len(near), step):
                self._apm.process_reverse_stream(
                    rtc.AudioFrame(bytearray(far[i : i + step]), rate, 1, n)
                )
                # The API requires the delay before every capture frame.
                self._apm.set_stream_delay_ms(self.delay_ms)
                frame = rtc.AudioFrame(near[i : i + step], rate, 1, n)
                self._apm.process_stream(frame)
                out[i // 2 : i // 2 + n] = np.frombuffer(frame.data, np.int16)
        except RuntimeError as err:
            raise StageError(Stage.AEC, f"WebRTC audio processing failed: {err}") from err
        out /= 32768.0
        return out


def _checked_delay(delay_ms: int) -> int:
    if not 0 <= delay_ms <= 1000:
        raise ValueError(f"echo delay must be 0..1000 ms, got {delay_ms}")
    return int(delay_ms)
