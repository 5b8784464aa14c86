"""Acoustic echo: cancelling the assistant's own voice, and simulating it.

In a room the microphone hears the loudspeaker. Without cancellation the VAD
takes the assistant's reply for the user speaking, and the assistant barges in
on itself. ``WebRtcEchoCanceller`` runs WebRTC's AEC3 (through the ``livekit``
wheel) on every captured block, with the block that was being played while it was
captured as the reference.

``RoomEcho`` is the other side: a simulated loudspeaker-to-microphone path for
``voiceagent run --echo DELAY_MS:GAIN_DB`` and for tests, so that echo handling
can be exercised without a room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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


def estimate_delay_ms(
    played: np.ndarray, mic: np.ndarray, rate: int, max_ms: float = 500.0
) -> float | None:
    """Milliseconds by which ``mic`` lags ``played`` (GCC-PHAT), or None when unsure.

    Both are mono float arrays of one length captured together (a few seconds,
    with the assistant speaking). None when there is too little played sound or
    no correlation peak stands out, e.g. in double talk or with no echo at all.
    """
    if played.size != mic.size:
        raise ValueError("played and mic must have one length")
    if float(np.sqrt(np.mean(np.square(played, dtype=np.float64)))) < 1e-3:
        return None
    max_lag = min(int(max_ms * rate / 1000), mic.size - 1)
    n = 1 << int(np.ceil(np.log2(2 * mic.size)))
    cross = np.fft.rfft(mic, n) * np.conj(np.fft.rfft(played, n))
    # PHAT weighting whitens the spectrum, so the peak is as sharp for speech
    # (most energy below 1 kHz) as for noise; the small floor keeps empty bins
    # from adding noise.
    mag = np.abs(cross)
    cross /= mag + 1e-3 * mag.max() + 1e-20
    corr = np.fft.irfft(cross, n)[: max_lag + 1]
    peak = int(np.argmax(corr))
    others = np.delete(corr, np.s_[max(0, peak - 8) : peak + 9])
    spread = float(np.std(others)) if others.size else 0.0
    # A true echo path gives a peak many standard deviations above the rest
    # (tens for RoomEcho on speech); unrelated signals stay well below 8.
    if spread == 0.0 or (corr[peak] - float(np.mean(others))) / spread < 8.0:
        return None
    return peak * 1000.0 / rate


class EchoGatedCanceller:
    """Cancels the echo only where there is one.

    AEC3 starts out assuming the loudspeaker is heard and, until it has learnt
    the echo path, suppresses anything in the microphone that coincides with
    playback. With no echo at all (headphones, a file or pipe without
    ``--echo``) it never learns, and the user's voice over a reply is removed by
    40-70 dB: measured, an "mm-hmm" vanished completely. So this wrapper keeps
    AEC3 running (it learns either way) but passes the microphone through
    untouched once the last ``window_s`` of playback has shown, repeatedly, no
    echo correlated with what was played (``estimate_delay_ms``). It starts out
    cancelling, and once an echo has been found it needs ``release_s`` of
    playback without one before it stops: double talk also hides the echo peak.

    Nor is the microphone cancelled while nothing has been played for
    ``tail_s``: there is no echo to remove then, and AEC3's processing of the
    user alone moved the end of real speech ~90 ms later (measured on
    req_cards_five_five: the end heard 90 ms after the words, against 10 ms
    before them uncancelled), which a command's answer waits for.

    After a stall (``realign``: the driver's estimate of how far the echo path
    moved) it checks the estimate on the first ``verify_s`` of playback that
    follows, with no audio from before the stall in the window, and realigns
    AEC3's reference once more if the echo is not where it was expected. The
    tolerance is lopsided: AEC3 takes a reference that leads the echo by a few
    tens of milliseconds in its stride, but one that lags it by 8 ms leaks
    (measured: 12-20 dB of echo reduction for a second instead of 30).
    """

    EARLY_TOLERANCE_MS = 12.0
    """Echo this much later than expected is left to AEC3's own tracking."""
    LATE_TOLERANCE_MS = 2.0
    """Echo this much sooner than expected is realigned at once."""
    CONFIRM_TOLERANCE_MS = 4.0
    """Two checks (``every_s`` apart) that find an echo this close in delay agree."""
    VERIFY_TRIES = 4
    """Times ``verify_s`` of playback without a clear echo (double talk, a quiet
    loudspeaker) after which the realignment is left unchecked."""

    def __init__(
        self,
        inner: EchoCanceller,
        sample_rate: int,
        window_s: float = 2.0,
        every_s: float = 0.5,
        release_s: float = 4.0,
        tail_s: float = 0.8,
        verify_s: float = 1.0,
    ) -> None:
        self.inner = inner
        self.rate = sample_rate
        self._tail = int(tail_s * sample_rate)
        """Samples after the last audible playback during which its echo may still
        arrive (the echo delay, up to ~400 ms, and the room's reverberation)."""
        self._since_played = self._tail
        self._window = int(window_s * sample_rate)
        self._every = int(every_s * sample_rate)
        self._release = int(release_s * sample_rate)
        self._played = np.zeros(self._window, np.float32)
        self._mic = np.zeros(self._window, np.float32)
        self._since_check = 0
        self._active = 0
        """Samples of audible playback since the last check."""
        self._without_echo = 0
        """Samples of playback checked since an echo was last found."""
        self._ever_found = False
        self._candidate_ms: float | None = None
        """While passing through: the delay of an echo found once, to be found again."""
        self.cancelling = True
        self.delay_ms: float | None = None
        """The echo delay last found (milliseconds), for the log."""
        self.aligned_ms: float | None = None
        """The echo delay (milliseconds) that AEC3 has learnt, as it would be
        measured now: followed through slow drift, moved by ``realign``."""
        self._verify = int(verify_s * sample_rate)
        self._since_realign: int | None = None
        """Samples since the last ``realign`` while its shift is still to be
        checked; None when there is nothing to check."""
        self._realign_active = 0
        """Of those, samples of audible playback."""

    def set_delay_ms(self, delay_ms: int) -> None:
        self.inner.set_delay_ms(delay_ms)

    def realign(self, shift_ms: float) -> None:
        """Realign AEC3 by the driver's ``shift_ms``, then check it on the echo."""
        self.inner.realign(shift_ms)
        if self.aligned_ms is not None:
            self.aligned_ms += shift_ms
        self._since_realign = self._realign_active = 0

    @property
    def echo_path(self) -> bool | None:
        if not self.cancelling:
            return False
        return True if self.delay_ms is not None else None

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        cleaned = self.inner.process(mic, played)
        n = mic.size
        self._played = np.concatenate([self._played[n:], played.astype(np.float32)])
        self._mic = np.concatenate([self._mic[n:], mic.astype(np.float32)])
        self._since_check += n
        audible = bool(np.abs(played).max() > 1e-3)
        if audible:
            self._active += n
            self._since_played = 0
        else:
            self._since_played += n
        if self._since_realign is not None:
            self._since_realign += n
            self._realign_active += n if audible else 0
            if self._realign_active >= self._verify:
                self._check_realignment()
        if self._since_check >= self._every:
            self._check()
        return cleaned if self.cancelling and self._since_played < self._tail else mic

    def _check_realignment(self) -> None:
        """Is the echo where the last ``realign`` expected it? Judged on audio
        from after it only: before it, the echo came at the old delay."""
        since = min(self._since_realign or 0, self._window)
        delay = estimate_delay_ms(self._played[-since:], self._mic[-since:], self.rate)
        if delay is None:
            if self._realign_active >= self.VERIFY_TRIES * self._verify:
                logger.debug("no echo to check the realignment against; leaving it")
                self._since_realign = None
            return  # double talk, or no echo: try again on more playback
        self._since_realign = None
        if self.aligned_ms is None:  # nothing learnt yet to keep aligned with
            self.aligned_ms = delay
            return
        off = delay - self.aligned_ms
        if -self.LATE_TOLERANCE_MS <= off <= self.EARLY_TOLERANCE_MS:
            logger.debug("echo at %.0f ms after the stall, %+.1f ms from where expected", delay, off)
            return
        logger.info("echo re-estimated at %.0f ms after the stall, not %.0f: realigning the canceller by %+.0f ms",
                    delay, self.aligned_ms, off)
        self.inner.realign(off)
        self.aligned_ms = delay

    def _check(self) -> None:
        checked, self._since_check = self._since_check, 0
        # Judge only windows mostly filled with playback: silence proves nothing.
        if self._active < checked // 2:
            self._active = 0
            return
        self._active = 0
        delay = estimate_delay_ms(self._played, self._mic, self.rate)
        if delay is not None and not self.cancelling:
            # Passing through, an echo must be found twice at one delay: a user
            # talking over the reply correlates with it now and then (measured: "echo
            # found (479 ms)" at a quiet user's first word, whom the echo margin then
            # deafened the assistant to); a real echo is found at the same delay again.
            confirmed = self._candidate_ms is not None and abs(delay - self._candidate_ms) <= self.CONFIRM_TOLERANCE_MS
            self._candidate_ms = delay
            if not confirmed:
                logger.debug("an echo at %.0f ms? passing through until it is found there again", delay)
                return
        self._candidate_ms = None
        if delay is not None:
            if not self.cancelling or self.delay_ms is None:
                logger.info("echo found (%.0f ms): cancelling it", delay)
            self.delay_ms, self._ever_found, self.cancelling = delay, True, True
            # AEC3 follows a slow drift on its own; a jump is the driver's to
            # report (``realign``), and checked on audio from after it only: a
            # window across one holds both delays.
            if self._since_realign is None and (
                self.aligned_ms is None or abs(delay - self.aligned_ms) < self.EARLY_TOLERANCE_MS
            ):
                self.aligned_ms = delay
            self._without_echo = 0
            return
        self._without_echo += checked
        limit = self._release if self._ever_found else 2 * self._every
        if self.cancelling and self._without_echo >= limit:
            logger.info("no echo of the reply in the input: passing it through uncancelled")
            self.cancelling = False


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
