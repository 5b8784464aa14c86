"""The playback queue between the conversation and the audio clock.

The conversation enqueues reply audio tagged with its turn; the audio clock (a
sound-card callback, or the paced file driver) pulls exactly one block per input
block, so what is pulled is what is played. Pulling reports when a turn's first
sample went out and when its last one did, with the sample offset inside the
block, so playback events are stamped to the sample. ``flush`` drops a turn's
queued audio at once (barge-in) and says how much of it had been played; the
played part's text is what the history keeps. ``hold``/``release`` pause the
output where it is (a suspected interruption) and ``duck`` lowers it, with short
fades so neither clicks. It also remembers how loud its recent output was, the
level any echo of it in the microphone is compared with.

Thread-safe: enqueue/flush run on the event loop, pull on the audio thread.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from voiceagent.audio.convert import rms_db

FADE_S = 0.005
"""Seconds of fade when the output pauses, resumes or changes gain (no clicks)."""
SILENT_DB = -70.0
"""Output quieter than this (dBFS) counts as nothing played."""
ENDED_KEPT = 8
"""Turns whose text is kept after they ended, for a listener's late ``truncate``."""


class NoticeKind(StrEnum):
    START = "start"
    """The first sample of a turn was played."""
    END = "end"
    """The last sample of a turn was played, or it was flushed."""
    PAUSE = "pause"
    """The output was held mid-turn: the first silent sample."""
    RESUME = "resume"


@dataclass(frozen=True)
class PlaybackNotice:
    kind: NoticeKind
    turn: int
    offset: int
    """Sample offset inside the pulled block where it happened."""
    played_samples: int = 0
    """For ``end``: samples of the turn that were played."""
    heard: str = ""
    """For ``end``: the text of what was played."""
    flushed: bool = False
    """For ``end``: the turn was cut off by ``flush`` rather than played out."""


@dataclass
class _TurnAudio:
    segments: list[tuple[str, int]] = field(default_factory=list)
    """(text, samples) per enqueued chunk, in order."""
    queued: int = 0
    played: int = 0
    started: bool = False
    finished: bool = False
    heard_cap: int | None = None
    """Samples the listener reported hearing (``truncate``): no more counts as heard."""


class Speaker:
    def __init__(self, sample_rate: int, gain_db: float = 0.0, level_window_s: float = 0.4) -> None:
        self.sample_rate = sample_rate
        self._gain = float(10 ** (gain_db / 20))
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, np.ndarray]] = deque()
        self._head_pos = 0
        self._turns: dict[int, _TurnAudio] = {}
        self._pending: list[PlaybackNotice] = []
        self._held = False
        self._paused_turn: int | None = None
        """Turn cut off mid-audio by ``hold``, announced with a ``pause`` notice."""
        self._fade_in = False
        self._duck = 1.0
        self._duck_now = 1.0
        self._level_window_s = level_window_s
        self._levels: deque[tuple[int, float]] = deque()
        """(samples, peak rms dBFS) of recent pulled blocks."""
        self._ended: deque[tuple[int, list[tuple[str, int]]]] = deque(maxlen=ENDED_KEPT)
        """(turn, segments) of the last turns that ended, for a late ``truncate``."""
        self.echo_path: bool | None = None
        """Whether what is played is heard in the input (the echo canceller's
        finding, set by the duplex driver); None: not known."""

    def enqueue(self, turn: int, audio: np.ndarray, text: str = "") -> None:
        """Queue mono float32 audio (at ``sample_rate``) for ``turn``."""
        if audio.size == 0:
            return
        audio = (audio * self._gain).astype(np.float32) if self._gain != 1.0 else audio
        with self._lock:
            state = self._turns.setdefault(turn, _TurnAudio())
            state.segments.append((text, audio.size))
            state.queued += audio.size
            self._queue.append((turn, audio))

    def finish(self, turn: int) -> bool:
        """No more audio comes for ``turn``. False if it never had any."""
        with self._lock:
            state = self._turns.get(turn)
            if state is None:
                return False
            state.finished = True
            if state.started and state.played >= state.queued:
                self._end(turn, state, offset=0)
            return True

    def flush(self, turn: int) -> int:
        """Drop the queued audio of ``turn`` now; returns the samples already played.

        The ``end`` notice comes with the next pull: that block is the first one
        without the turn's audio, so it marks the moment the output went quiet.
        """
        with self._lock:
            if self._queue and self._queue[0][0] == turn:
                self._head_pos = 0
            if self._paused_turn == turn:
                self._paused_turn = None  # it will not resume
            self._queue = deque((t, a) for t, a in self._queue if t != turn)
            state = self._turns.get(turn)
            if state is None:
                return 0
            if state.started:
                self._end(turn, state, offset=0, flushed=True)
            else:
                del self._turns[turn]
            return state.played

    def _end(self, turn: int, state: _TurnAudio, offset: int, flushed: bool = False) -> None:
        self._pending.append(
            PlaybackNotice(NoticeKind.END, turn, offset, state.played, _heard(state), flushed)
        )
        self._ended.append((turn, state.segments))
        del self._turns[turn]

    def truncate(self, turn: int, samples: int) -> str | None:
        """The listener heard only the first ``samples`` of ``turn``: a browser that
        buffers what it is sent reports how far it really played. From now on the
        turn's heard text stops there. Returns the text heard up to ``samples``,
        None if the turn is unknown (never played, or long gone)."""
        samples = max(0, samples)
        with self._lock:
            state = self._turns.get(turn)
            if state is not None:
                state.heard_cap = samples if state.heard_cap is None else min(state.heard_cap, samples)
                return _text_of(state.segments, samples)
            for ended, segments in self._ended:
                if ended == turn:
                    return _text_of(segments, samples)
        return None

    def heard_text(self, turn: int) -> str:
        """The text of what has been played of ``turn`` so far."""
        with self._lock:
            state = self._turns.get(turn)
            return _heard(state) if state else ""

    def played_samples(self, turn: int) -> int:
        """Samples of ``turn``'s audio played so far (0 once it has ended)."""
        with self._lock:
            state = self._turns.get(turn)
            return state.played if state else 0

    def played_s(self, turn: int) -> float:
        """Seconds of ``turn``'s audio played so far (0 once it has ended)."""
        with self._lock:
            state = self._turns.get(turn)
            return state.played / self.sample_rate if state else 0.0

    def hold(self) -> None:
        """Pause the output where it is (fading out); queued audio waits."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        """Resume the output where ``hold`` left it (fading in)."""
        with self._lock:
            self._held = False

    @property
    def held(self) -> bool:
        with self._lock:
            return self._held

    def duck(self, gain_db: float) -> None:
        """Lower the output by ``gain_db`` decibels (0 restores it)."""
        with self._lock:
            self._duck = float(10 ** (gain_db / 20))

    def echo_level_db(self) -> float | None:
        """Loudest recent output block (rms dBFS), None if nothing audible was played.

        "Recent" spans ``level_window_s``: long enough to cover the delay and the
        tail of the echo path.
        """
        with self._lock:
            if not self._levels:
                return None
            peak = max(db for _, db in self._levels)
        return peak if peak > SILENT_DB else None

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._queue) or any(not s.finished for s in self._turns.values())

    def pull(self, n: int) -> tuple[np.ndarray, list[PlaybackNotice]]:
        """The next ``n`` samples to play (silence where none is queued)."""
        out = np.zeros(n, dtype=np.float32)
        with self._lock:
            notices, self._pending = self._pending, []
            fade = max(1, int(FADE_S * self.sample_rate))
            if self._held:
                # Play a few ms more, faded out, so the cut does not click.
                limit = fade if self._paused_turn is None and self._playing_turn() is not None else 0
                if limit:
                    self._paused_turn = self._playing_turn()
            else:
                limit = n
                if self._paused_turn is not None:
                    notices.append(PlaybackNotice(NoticeKind.RESUME, self._paused_turn, 0))
                    self._paused_turn = None
                    self._fade_in = True
            filled = self._fill(out, min(limit, n), notices)
            if self._held and limit:
                out[:filled] *= np.linspace(1.0, 0.0, filled, dtype=np.float32)
                if self._paused_turn in self._turns:
                    notices.append(PlaybackNotice(NoticeKind.PAUSE, self._paused_turn, filled))
                else:  # the fade played its last samples: it ended instead
                    self._paused_turn = None
            elif self._fade_in and filled:
                k = min(fade, filled)
                out[:k] *= np.linspace(0.0, 1.0, k, dtype=np.float32)
                self._fade_in = False
            if self._duck != 1.0 or self._duck_now != 1.0:
                out *= np.linspace(self._duck_now, self._duck, n, dtype=np.float32)
                self._duck_now = self._duck
            self._remember_level(out)
        return out, notices

    def _playing_turn(self) -> int | None:
        """The turn whose audio is at the head of the queue, if it has started."""
        if not self._queue:
            return None
        state = self._turns.get(self._queue[0][0])
        return self._queue[0][0] if state is not None and state.started else None

    def _remember_level(self, out: np.ndarray) -> None:
        self._levels.append((out.size, rms_db(out)))
        window = int(self._level_window_s * self.sample_rate)
        while sum(k for k, _ in self._levels) - self._levels[0][0] >= window:
            self._levels.popleft()

    def _fill(self, out: np.ndarray, n: int, notices: list[PlaybackNotice]) -> int:
        """Copy up to ``n`` queued samples into ``out``; returns how many."""
        filled = 0
        while filled < n and self._queue:
            turn, audio = self._queue[0]
            state = self._turns.get(turn)
            if state is not None and not state.started:
                state.started = True
                notices.append(PlaybackNotice(NoticeKind.START, turn, filled))
            take = min(n - filled, audio.size - self._head_pos)
            out[filled : filled + take] = audio[self._head_pos : self._head_pos + take]
            filled += take
            self._head_pos += take
            if state is not None:
                state.played += take
            if self._head_pos >= audio.size:
                self._queue.popleft()
                self._head_pos = 0
                if state is not None and state.finished and state.played >= state.queued:
                    self._end(turn, state, offset=filled)
                    notices.extend(self._pending)
                    self._pending = []
        return filled


def _heard(state: _TurnAudio) -> str:
    """Text of the played part; a partly played chunk counts its words pro rata."""
    played = state.played if state.heard_cap is None else min(state.played, state.heard_cap)
    return _text_of(state.segments, played)


def _text_of(segments: list[tuple[str, int]], played: int) -> str:
    words: list[str] = []
    remaining = played
    for text, samples in segments:
        if remaining <= 0:
            break
        part = text.split()
        if remaining >= samples:
            words.extend(part)
        else:
            words.extend(part[: int(len(part) * remaining / samples)])
        remaining -= samples
    return " ".join(words)
