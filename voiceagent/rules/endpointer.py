"""Pure end-of-utterance logic: per-frame speech flags in, decisions out.

No clock, no audio, no model: the caller feeds one boolean per VAD frame and
gets back what changed. Frame indices are converted to times by the caller
(``index * frame_ms``), so this can be tested with lists of booleans.

The states an utterance goes through::

    IDLE --START--> SPEAKING --PAUSE--> PAUSED --END--> IDLE
                        ^                  |
                        +-----RESUME-------+

PAUSE fires after ``speculate_ms`` of silence so the caller can start the final
transcript (and the reply) before the turn is over; RESUME tells it to throw that
work away because the user went on speaking; END fires after
``trailing_silence_ms``, unless the caller has judged this pause meanwhile and
set a shorter (or longer) silence with ``set_silence_needed`` (see ``rules.turn_end``).
Short voiced blips inside a silence (a click, a breath)
shorter than ``resume_ms`` do not reset the silence: real people and real rooms
produce them, and they would otherwise push the end of turn out indefinitely.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


class Decision(enum.Enum):
    NONE = "none"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"


@dataclass(frozen=True)
class EndpointerSettings:
    """Built from the config (``Config.endpointer_settings``), its one source of defaults."""

    frame_ms: int
    """Milliseconds per frame."""
    start_ms: int
    """Voiced milliseconds (within a short window) that open an utterance."""
    resume_ms: int
    """Consecutive voiced milliseconds that count as speech resuming after silence."""
    speculate_ms: int
    """Silence in milliseconds after which PAUSE fires (0 fires on the first silent frame)."""
    trailing_silence_ms: int
    """Silence in milliseconds that ends the utterance, unless set per pause."""
    max_utterance_ms: int
    """An utterance longer than this is ended (milliseconds)."""

    def frames(self, ms: int) -> int:
        return max(1, -(-ms // self.frame_ms))


class Endpointer:
    """Turns a stream of per-frame speech flags into utterance decisions."""

    def __init__(self, settings: EndpointerSettings) -> None:
        self.s = settings
        self._start_frames = settings.frames(settings.start_ms)
        self._window: deque[bool] = deque(maxlen=self._start_frames + self._start_frames // 2 + 1)
        self._resume_frames = settings.frames(settings.resume_ms)
        self._pause_frames = settings.frames(settings.speculate_ms) if settings.speculate_ms else 1
        self._default_end_frames = settings.frames(settings.trailing_silence_ms)
        self._end_frames = self._default_end_frames
        self._max_frames = settings.frames(settings.max_utterance_ms)
        self.index = -1
        """Index of the last frame pushed."""
        self.in_utterance = False
        self.paused = False
        self.onset_index = 0
        """First voiced frame of the current (or last) utterance."""
        self.last_voiced_index = 0
        """Last frame counted as speech in the current (or last) utterance."""
        self._silence = 0
        self._voiced_run = 0

    @property
    def silence_ms(self) -> int:
        """Milliseconds of silence in the current utterance so far."""
        return self._silence * self.s.frame_ms

    def set_silence_needed(self, ms: int) -> None:
        """The silence that ends the current pause (until speech resumes).

        When that much has already passed, the next frame ends the utterance.
        """
        if self.in_utterance:
            self._end_frames = max(1, self.s.frames(ms))

    def push(self, is_speech: bool) -> Decision:
        self.index += 1
        if not self.in_utterance:
            return self._idle(is_speech)
        return self._speaking(is_speech)

    def _idle(self, is_speech: bool) -> Decision:
        self._window.append(is_speech)
        if sum(self._window) < self._start_frames:
            return Decision.NONE
        first_voiced = len(self._window) - 1 - list(self._window).index(True)
        self.onset_index = self.index - first_voiced
        self.last_voiced_index = self.index
        self.in_utterance = True
        self.paused = False
        self._end_frames = self._default_end_frames
        self._silence = 0
        self._voiced_run = 0
        self._window.clear()
        return Decision.START

    def _speaking(self, is_speech: bool) -> Decision:
        if is_speech:
            self._voiced_run += 1
            if self._silence == 0 or self._voiced_run >= self._resume_frames:
                # Real speech (not a blip): the silence, if any, is over.
                self.last_voiced_index = self.index
                self._silence = 0
                self._end_frames = self._default_end_frames
                if self.paused:
                    self.paused = False
                    return Decision.RESUME
                return self._check_max()
            self._silence += 1  # a blip inside silence counts as silence
        else:
            self._voiced_run = 0
            self._silence += 1
        if self._silence >= self._end_frames:
            return self._end()
        if not self.paused and self._silence >= self._pause_frames:
            self.paused = True
            return Decision.PAUSE
        return self._check_max()

    def _check_max(self) -> Decision:
        if self.index - self.onset_index + 1 >= self._max_frames:
            self.last_voiced_index = self.index
            return self._end()
        return Decision.NONE

    def _end(self) -> Decision:
        self.in_utterance = False
        self.paused = False
        self._silence = 0
        self._voiced_run = 0
        return Decision.END
