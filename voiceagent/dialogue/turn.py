"""A turn: everything done to answer one utterance, and the unit of cancellation.

A turn owns its reply task (LLM stream -> clause splitter -> TTS). It may start
*speculatively*, on the transcript taken at a pause, before the endpointer has
decided that the user is done. Until it is committed, its events are held back
and its audio is kept off the speaker; if the user resumes speaking it is
cancelled and nothing of it was ever visible. Once committed, held events are
published (with the times at which they happened) and audio flows to the speaker.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from voiceagent.events import Event

logger = logging.getLogger(__name__)


class TurnState(enum.Enum):
    SPECULATIVE = "speculative"
    COMMITTED = "committed"
    CANCELLED = "cancelled"
    DONE = "done"


@dataclass
class Turn:
    id: int
    user_text: str
    publish: Callable[[Event], None]
    enqueue_audio: Callable[[int, np.ndarray, str], None]
    state: TurnState = TurnState.SPECULATIVE
    task: asyncio.Task[None] | None = None
    reply: str = ""
    """Text generated so far (what was *heard* comes from the speaker)."""
    generation_done: bool = False
    had_audio: bool = False
    failed: bool = False
    """A model call failed while answering (the error event says which)."""
    _held_events: list[Event] = field(default_factory=list)
    _held_audio: list[tuple[np.ndarray, str]] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        if self.state is TurnState.COMMITTED or self.state is TurnState.DONE:
            self.publish(event)
        elif self.state is TurnState.SPECULATIVE:
            self._held_events.append(event)
        # a cancelled turn's late events are dropped

    def deliver(self, audio: np.ndarray, text: str) -> None:
        self.had_audio = True
        if self.state is TurnState.COMMITTED:
            self.enqueue_audio(self.id, audio, text)
        elif self.state is TurnState.SPECULATIVE:
            self._held_audio.append((audio, text))

    def commit(self) -> None:
        if self.state is not TurnState.SPECULATIVE:
            return
        self.state = TurnState.COMMITTED
        for event in sorted(self._held_events, key=lambda e: e.t):
            self.publish(event)
        for audio, text in self._held_audio:
            self.enqueue_audio(self.id, audio, text)
        self._held_events.clear()
        self._held_audio.clear()

    def drop_reply(self) -> None:
        """Stop the reply task and drop its held audio, keeping the held events
        (the transcript) for when the turn is finished without an answer."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self._held_audio.clear()

    def cancel(self) -> None:
        """Stop the reply; late results of this turn are dropped from now on."""
        if self.state in (TurnState.CANCELLED, TurnState.DONE):
            return
        self.state = TurnState.CANCELLED
        self._held_events.clear()
        self._held_audio.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()
