"""The playback queue between the conversation and the audio clock.

The conversation enqueues reply audio tagged with its turn; the audio clock (a
sound-card callback, or the paced file driver) pulls exactly one block per input
block, so what is pulled is what is played. Pulling reports when a turn's first
sample went out and when its last one did, with the sample offset inside the
block, so playback events are stamped to the sample. ``flush`` drops a turn's
queued audio at once (barge-in) and says how much of it had been played; the
played part's text is what the history keeps.

Thread-safe: enqueue/flush run on the event loop, pull on the audio thread.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PlaybackNotice:
    kind: str
    """``start`` (first sample of a turn played) or ``end`` (last sample, or flushed)."""
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


class Speaker:
    def __init__(self, sample_rate: int, gain_db: float = 0.0) -> None:
        self.sample_rate = sample_rate
        self._gain = float(10 ** (gain_db / 20))
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, np.ndarray]] = deque()
        self._head_pos = 0
        self._turns: dict[int, _TurnAudio] = {}
        self._pending: list[PlaybackNotice] = []

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
            PlaybackNotice("end", turn, offset, state.played, _heard(state), flushed)
        )
        del self._turns[turn]

    def heard_text(self, turn: int) -> str:
        """The text of what has been played of ``turn`` so far."""
        with self._lock:
            state = self._turns.get(turn)
            return _heard(state) if state else ""

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._queue) or any(not s.finished for s in self._turns.values())

    def pull(self, n: int) -> tuple[np.ndarray, list[PlaybackNotice]]:
        """The next ``n`` samples to play (silence where none is queued)."""
        out = np.zeros(n, dtype=np.float32)
        with self._lock:
            notices, self._pending = self._pending, []
            filled = 0
            while filled < n and self._queue:
                turn, audio = self._queue[0]
                state = self._turns.get(turn)
                if state is not None and not state.started:
                    state.started = True
                    notices.append(PlaybackNotice("start", turn, filled))
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
        return out, notices


def _heard(state: _TurnAudio) -> str:
    """Text of the played part; a partly played chunk counts its words pro rata."""
    words: list[str] = []
    remaining = state.played
    for text, samples in state.segments:
        if remaining <= 0:
            break
        part = text.split()
        if remaining >= samples:
            words.extend(part)
        else:
            words.extend(part[: int(len(part) * remaining / samples)])
        remaining -= samples
    return " ".join(words)
