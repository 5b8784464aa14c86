"""The assistant's state, as Home Assistant shows it, derived from events."""

from __future__ import annotations

import enum
import logging
from typing import Callable

from voiceagent.events import (
    AnyEvent,
    EndOfTurn,
    PlaybackEnd,
    PlaybackStart,
    SpeechStart,
    TextRequest,
    TurnEnd,
    WakeWordDetected,
)
from voiceagent.rules.wake_gate import WakeGate

logger = logging.getLogger(__name__)


class AssistantState(str, enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    """Hearing a request (after the wake word, in a follow-up, or always without one)."""
    THINKING = "thinking"
    """The request is over and the reply is being prepared."""
    SPEAKING = "speaking"


class StateReporter:
    """Event listener that calls ``on_change`` with each new state.

    Speech that is not addressed to the assistant (no wake word) leaves it idle:
    a television must not make the satellite light up. Call ``tick`` now and then,
    so that a wake word with no request after it goes back to idle.
    """

    def __init__(self, on_change: Callable[[AssistantState], None], gate: WakeGate | None = None) -> None:
        self.on_change = on_change
        self.gate = gate
        self.state = AssistantState.IDLE
        self._speaking: set[int] = set()
        """Turns whose reply is being played."""
        self._thinking: set[int] = set()
        self._hearing: set[int] = set()
        """Turns whose speech is being listened to as a request."""
        self._speech: int | None = None
        """The turn of the speech going on (addressed or not)."""

    def __call__(self, event: AnyEvent) -> None:
        match event:
            case SpeechStart(turn=turn):
                self._speech = turn
                if self.gate is None or self.gate.admits(event.t, event.t):
                    self._hearing.add(turn)
            case WakeWordDetected():
                if self._speech is not None:
                    self._hearing.add(self._speech)  # "Hey Jarvis, ..." in one breath
            case EndOfTurn(turn=turn):
                self._speech = None
                if turn in self._hearing:
                    self._hearing.discard(turn)
                    self._thinking.add(turn)
            case TextRequest(turn=turn):
                self._thinking.add(turn)
            case PlaybackStart(turn=turn):
                self._thinking.discard(turn)
                self._speaking.add(turn)
            case PlaybackEnd(turn=turn):
                self._speaking.discard(turn)
            case TurnEnd(turn=turn):
                for turns in (self._speaking, self._thinking, self._hearing):
                    turns.discard(turn)
                if self._speech == turn:
                    self._speech = None
            case _:
                return
        self.tick(event.t)

    def tick(self, now: float) -> None:
        if self._speaking:
            state = AssistantState.SPEAKING
        elif self._thinking:
            state = AssistantState.THINKING
        elif self._hearing or (self.gate is not None and self.gate.awake(now)):
            state = AssistantState.LISTENING
        else:
            state = AssistantState.IDLE
        if state is not self.state:
            self.state = state
            logger.debug("state %s at %.2f s", state.value, now)
            self.on_change(state)
