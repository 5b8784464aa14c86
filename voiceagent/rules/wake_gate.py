"""Is an utterance addressed to the assistant? The wake word and follow-up rules.

Pure logic on the conversation clock (seconds since the first input sample): the
daemon tells it when the wake word was heard and when replies ended, and the
conversation asks it about each utterance before answering. With no gate (``talk``,
``run``, or ``wake.model: none``) every utterance is addressed to the assistant.

An utterance is addressed to the assistant when

- the wake word was heard during it ("Hey Jarvis, what time is it?" in one breath;
  the detector fires a few hundred milliseconds after the phrase, still inside
  the utterance or at its first pause), or
- it began within ``listen_s`` after a wake word that has not been used yet
  ("Hey Jarvis." ... "What time is it?"), or
- it began within ``follow_up_s`` after a reply ended, or while one was playing:
  the user is in a conversation and should not have to say the name again.

Speech over a reply is judged by the barge-in rules, not here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from voiceagent.events import AnyEvent, IntentHandled, PlaybackStart, TurnEnd
from voiceagent.rules.wake_phrase import strip_wake_phrase

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class WakeGateSettings:
    """Built from the config (``WakeConfig.gate_settings``), its one source of defaults."""

    listen_s: float
    """Seconds after a wake word alone in which the request may begin."""
    follow_up_s: float
    """Seconds after a reply ends in which the user may go on without the wake word."""
    phrase: str
    """The wake phrase, trimmed from the start of transcripts ("hey jarvis")."""
    lead_s: float = 0.5
    """How long before an utterance's detected onset a detection still counts for it
    (seconds): the onset is found a few frames late, the detector is not."""
    lag_s: float = 0.5
    """How long after an utterance's end a detection still counts for it (seconds):
    the detector answers ~0.25 s after the phrase (measured on espeak voices)."""


class WakeGate:
    def __init__(self, settings: WakeGateSettings) -> None:
        self.settings = settings
        self._wakes: list[float] = []
        """Times of wake words heard and not yet used by a request, oldest first."""
        self._follow_until: float | None = None
        self._replying: set[int] = set()
        self._asking: set[int] = set()
        """Turns whose reply asks the user something (Home Assistant's agent said so)."""

    # ---------------------------------------------------------------- inputs

    def heard(self, t: float) -> None:
        """The wake word was detected at ``t``."""
        self._wakes.append(t)
        # Only the recent ones can still open a window.
        horizon = t - self.settings.listen_s - self.settings.lead_s
        self._wakes = [w for w in self._wakes if w >= horizon]

    def on_event(self, event: AnyEvent) -> None:
        """Follow the conversation's replies (subscribe this to the event bus)."""
        match event:
            case PlaybackStart(turn=turn):
                self._replying.add(turn)
            case IntentHandled(turn=turn, follow_up=True):
                self._asking.add(turn)
            case TurnEnd(turn=turn, reason=reason):
                was_playing = turn in self._replying
                self._replying.discard(turn)
                # a reply to a request (spoken or asked); not after an announcement
                # (``say``, no request) nor the stop button (the user wanted it quiet)
                if was_playing and reason.replied and event.text:
                    self._follow_until = event.t + self.settings.follow_up_s
                if turn in self._asking:  # a question wants its answer, follow_up_s or not
                    self._asking.discard(turn)
                    self._follow_until = event.t + max(self.settings.follow_up_s, self.settings.listen_s)

    def accepted(self, start_t: float) -> None:
        """A request that began at ``start_t`` is being answered: its wake word is used up."""
        self._wakes = [w for w in self._wakes if w < start_t - self.settings.lead_s - self.settings.listen_s]

    # --------------------------------------------------------------- verdict

    def admits(self, start_t: float, end_t: float) -> bool:
        """Is the utterance from ``start_t`` to ``end_t`` (now, if it goes on) for us?"""
        s = self.settings
        for w in self._wakes:
            if start_t - s.lead_s <= w <= end_t + s.lag_s:
                return True  # said during it
            if w <= start_t <= w + s.listen_s:
                return True  # said just before it
        if self._replying:
            return True
        return self._follow_until is not None and start_t <= self._follow_until

    def heard_in(self, start_t: float, end_t: float) -> bool:
        """Did the detector hear the wake word inside the utterance from ``start_t`` to ``end_t``?"""
        s = self.settings
        return any(start_t - s.lead_s <= w <= end_t + s.lag_s for w in self._wakes)

    def strip(self, text: str, heard: bool = False) -> str:
        """The transcript without the wake phrase it may start with (``heard``: the
        detector heard it in this utterance, so a misheard name goes too)."""
        return strip_wake_phrase(text, self.settings.phrase, heard)

    def awake(self, now: float) -> bool:
        """Waiting for a request after a wake word at ``now`` (for the assistant's state)."""
        return any(w <= now <= w + self.settings.listen_s for w in self._wakes)
