"""Acoustic echo: cancelling the assistant's own voice only where it is heard.

In a room the microphone hears the loudspeaker, and the echo must be cancelled
(``audio.aec``: the ``EchoCanceller`` protocol and WebRTC's AEC3). With
headphones, or a file or pipe, there is no echo, and a canceller that assumes
one removes the user's voice over a reply. So ``EchoGatedCanceller`` looks for
the echo first (``estimate_delay_ms``: is the reply in the microphone, and how
late?) and cancels only while there is one; after a stalled stream it checks
that the canceller's reference was moved to where the echo now is.

The simulated room for ``voiceagent run --echo`` and for tests is in
``audio.room_echo``. All of these are importable from here too, the names the
rest of the program (and the tests) have always imported from this module.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

# The canceller and the simulated room live in their own modules; re-exported
# here because the app, the duplex drivers and the tests import them from here.
from voiceagent.audio.aec import (  # noqa: F401
    FRAME_MS,
    EchoCanceller,
    NoEchoCanceller,
    WebRtcEchoCanceller,
)
from voiceagent.audio.room_echo import EchoSpec, RoomEcho, parse_echo_spec  # noqa: F401

logger = logging.getLogger(__name__)


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

    A network client that starts its speaker anew for each reply (a Wyoming
    satellite runs a new ``aplay`` per reply, 60-200 ms to start) gives each
    reply an echo path of its own: ``new_echo_path`` restarts AEC3 for it.
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
    HINT_MARGIN_MS = 30.0
    """``new_echo_path`` hints this much less than the least delay found of late:
    a reference that leads the echo is taken in AEC3's stride, one that lags leaks."""
    HINT_HISTORY = 8
    """Echo paths whose delays the hint is drawn from."""

    def __init__(
        self,
        inner: EchoCanceller,
        sample_rate: int,
        window_s: float = 2.0,
        every_s: float = 0.5,
        release_s: float = 4.0,
        tail_s: float = 0.8,
        verify_s: float = 1.0,
        first_every_s: float = 0.2,
        max_delay_ms: float = 500.0,
        first_verdict_s: float | None = None,
    ) -> None:
        """``max_delay_ms``: the longest echo delay looked for; ``first_verdict_s``:
        playback without an echo after which there is none, until one is found
        (None: two ``first_every_s``). A network client's speaker (a satellite's
        ``aplay``, up to 500 ms of buffer, behind the network's lead) needs both
        longer: its echo may arrive after 0.4 s of the first reply."""
        self.inner = inner
        self.rate = sample_rate
        self._max_delay_ms = max_delay_ms
        self._first_verdict = int((2 * first_every_s if first_verdict_s is None else first_verdict_s) * sample_rate)
        self._path_delays: deque[float] = deque(maxlen=self.HINT_HISTORY)
        """The echo delay found on each of the last echo paths (``new_echo_path``)."""
        self._first_every = int(first_every_s * sample_rate)
        """Until the first verdict, checks come this often: the first reply is
        where a user interrupts soonest, and AEC3 suppresses them while it runs
        with nothing learnt (an echo 0.2 s of speech is enough to show)."""
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

    def new_echo_path(self) -> None:
        """The echo path is a new one from the next block on, its delay unknown
        within a spread: a network client's speaker that was started anew (a
        Wyoming satellite's, for each reply: measured 186-258 ms in a 100 ms
        room, different each time). AEC3 converged on the last path leaked there
        (1-18 dB taken off instead of 38-45) when the new echo came sooner, and
        its echo was heard as speech. So AEC3 restarts, its hint below every
        delay found of late, and the delay is looked for on this path's audio
        only.
        """
        if not isinstance(self.inner, WebRtcEchoCanceller):
            return
        if self.delay_ms is not None:
            self._path_delays.append(self.delay_ms)
        hint = min(self._path_delays, default=float(self.inner.delay_ms) + self.HINT_MARGIN_MS)
        hint = int(min(1000.0, max(0.0, hint - self.HINT_MARGIN_MS)))
        logger.debug("a new echo path: AEC3 restarts with a delay hint of %d ms", hint)
        self.inner.restart(hint)
        self.delay_ms = self.aligned_ms = self._candidate_ms = None
        self._since_realign = None
        self._played[:] = 0.0  # the last path's echo came at another delay
        self._mic[:] = 0.0
        self._since_check = self._active = 0

    def realign(self, shift_ms: float) -> None:
        """Realign AEC3 by the driver's ``shift_ms``, then check it on the echo."""
        self.inner.realign(shift_ms)
        if self.aligned_ms is not None:
            self.aligned_ms += shift_ms
        self._since_realign = self._realign_active = 0

    @property
    def _decided(self) -> bool:
        """Has an echo been found, or its absence been shown, at least once?"""
        return self._ever_found or not self.cancelling

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
        if self._since_check >= (self._every if self._decided else self._first_every):
            self._check()
        return cleaned if self.cancelling and self._since_played < self._tail else mic

    def _check_realignment(self) -> None:
        """Is the echo where the last ``realign`` expected it? Judged on audio
        from after it only: before it, the echo came at the old delay."""
        since = min(self._since_realign or 0, self._window)
        delay = estimate_delay_ms(self._played[-since:], self._mic[-since:], self.rate, self._max_delay_ms)
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
        delay = estimate_delay_ms(self._played, self._mic, self.rate, self._max_delay_ms)
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
            if not self.cancelling or not self._ever_found:
                logger.info("echo found (%.0f ms): cancelling it", delay)
            elif self.delay_ms is None:  # on a new echo path (``new_echo_path``)
                logger.debug("echo found (%.0f ms) on the new echo path", delay)
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
        limit = self._release if self._ever_found else self._first_verdict
        if self.cancelling and self._without_echo >= limit:
            logger.info("no echo of the reply in the input: passing it through uncancelled")
            self.cancelling = False
