"""Turns: everything done to answer one utterance or typed request, and the
ledger where every turn is opened, cut and finished.

A turn owns its reply task (LLM stream -> clauses -> TTS). It may start
*speculatively*, on the transcript taken at a pause, before the endpointer has
decided that the user is done. Until it is committed, its events are held back
and its audio is kept off the speaker; if the user resumes speaking it is
cancelled and nothing of it was ever visible. Once committed, held events are
published (with the times at which they happened) and audio flows to the speaker.

The ``TurnLedger`` is the one place where a turn ends. A reply is cut the same
way whatever cuts it (a barge-in, the stop button, a new typed request, the
shutdown): what was heard is noted, the speaker's queue flushed, the task
cancelled; the turn is finished once the output has really gone quiet.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, field
from typing import Callable, Coroutine

import numpy as np

from voiceagent.aio import TaskSet
from voiceagent.audio.speaker import NoticeKind, PlaybackNotice, Speaker
from voiceagent.clock import Clock
from voiceagent.dialogue.history import Exchange, History
from voiceagent.events import AnyEvent, EventBus, PlaybackEnd, PlaybackStart, Reason, TurnEnd
from voiceagent.home.protocol import Command

logger = logging.getLogger(__name__)


class TurnState(enum.Enum):
    SPECULATIVE = "speculative"
    COMMITTED = "committed"
    CANCELLED = "cancelled"
    DONE = "done"


@dataclass(eq=False)
class Turn:
    id: int
    user_text: str
    publish: Callable[[AnyEvent], None]
    enqueue_audio: Callable[[int, np.ndarray, str], None]
    state: TurnState = TurnState.SPECULATIVE
    reply: str = ""
    """Text generated so far (what was *heard* comes from the speaker)."""
    generation_done: bool = False
    failed: bool = False
    """A model call failed while answering (the error event says which)."""
    apologized: bool = False
    """It failed before a word of its reply, and the user hears an apology instead:
    it ends as an error, and no exchange goes into the history."""
    delivered: bool = False
    """Some of its reply's audio has been handed over."""
    command: Command | None = None
    """A command of the house this turn carries out (once committed) instead of asking the LLM."""
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the turn is committed: an action waits for it, and never runs if the
    turn is cancelled first (the user went on, or talked over it)."""
    _task: asyncio.Task[None] | None = None
    _held_events: list[AnyEvent] = field(default_factory=list)
    _held_audio: list[tuple[np.ndarray, str]] = field(default_factory=list)

    @property
    def answering(self) -> bool:
        """Its reply has been started."""
        return self._task is not None

    def start(self, reply: Coroutine[None, None, None], tasks: TaskSet) -> None:
        """Start making the reply; the task is this turn's, kept (and awaited) in ``tasks``."""
        self._task = tasks.spawn(reply, owner=self.id)

    def emit(self, event: AnyEvent) -> None:
        if self.state is TurnState.COMMITTED or self.state is TurnState.DONE:
            self.publish(event)
        elif self.state is TurnState.SPECULATIVE:
            self._held_events.append(event)
        # a cancelled turn's late events are dropped

    def deliver(self, audio: np.ndarray, text: str) -> None:
        self.delivered = True
        if self.state is TurnState.COMMITTED:
            self.enqueue_audio(self.id, audio, text)
        elif self.state is TurnState.SPECULATIVE:
            self._held_audio.append((audio, text))

    def commit(self) -> None:
        if self.state is not TurnState.SPECULATIVE:
            return
        self.state = TurnState.COMMITTED
        self.committed.set()
        for event in sorted(self._held_events, key=lambda e: e.t):
            self.publish(event)
        for audio, text in self._held_audio:
            self.enqueue_audio(self.id, audio, text)
        self._held_events.clear()
        self._held_audio.clear()

    def end(self) -> None:
        """Nothing more comes of it (the ledger has finished it); a speculative turn's
        held events (its transcript) are published first."""
        self.commit()
        self.state = TurnState.DONE

    def drop_reply(self) -> None:
        """Stop the reply and drop its held audio, keeping the held events (the
        transcript) for when the turn is finished without an answer."""
        self._stop_task()
        self._held_audio.clear()

    def cancel(self) -> None:
        """Stop the reply; late results of this turn are dropped from now on."""
        if self.state in (TurnState.CANCELLED, TurnState.DONE):
            return
        self.state = TurnState.CANCELLED
        self._held_events.clear()
        self._held_audio.clear()
        self._stop_task()

    def _stop_task(self) -> None:
        # A thread cannot be interrupted mid-token: the task stops at its next
        # await, and its ``TaskSet`` awaits it.
        if self._task is not None and not self._task.done():
            self._task.cancel()


class TurnLedger:
    """The turns in flight, by id; the one place where they are opened, cut and finished."""

    def __init__(
        self,
        bus: EventBus,
        speaker: Speaker,
        history: History,
        clock: Clock,
        on_exchange: Callable[[], None],
    ) -> None:
        self.bus = bus
        self.speaker = speaker
        self.history = history
        self.clock = clock
        self.on_exchange = on_exchange
        """Called when the history has gained an exchange (to prefill the next prompt)."""
        self._turns: dict[int, Turn] = {}
        self._counter = 0
        self._cut: dict[int, tuple[Reason, str]] = {}
        """Turns cut while audible, until their output has gone quiet: why, and what was heard."""
        self._paused_at: dict[int, float] = {}
        """Turn -> when its output was paused (the real stop, if it never resumes)."""

    @property
    def idle(self) -> bool:
        return not self._turns

    def new_id(self) -> int:
        """The next turn number (utterances and typed requests share them)."""
        self._counter += 1
        return self._counter

    def open(self, turn_id: int, user_text: str) -> Turn:
        turn = Turn(turn_id, user_text, self.bus.publish, self.speaker.enqueue)
        self._turns[turn.id] = turn
        return turn

    def get(self, turn_id: int) -> Turn | None:
        return self._turns.get(turn_id)

    def discard(self, turn: Turn) -> None:
        """A speculative turn the user talked on through: it leaves no trace."""
        turn.cancel()
        self._turns.pop(turn.id, None)

    def replying(self) -> list[int]:
        """Turns whose reply is playing or about to (committed, not done)."""
        return [t.id for t in self._turns.values() if t.state is TurnState.COMMITTED]

    def cut(
        self, turn: Turn, reason: Reason, announce: Callable[[float, str], None] | None = None
    ) -> None:
        """Cut a committed turn's reply now: no more tokens, queued audio dropped.

        ``announce(played_s, heard)`` is called first (the barge-in event). The
        turn is finished with ``reason`` when its output has gone quiet (a
        playback end notice), or at once if nothing of it was audible.
        """
        heard = self.speaker.heard_text(turn.id)
        played = self.speaker.flush(turn.id)
        turn.cancel()
        if announce is not None:
            announce(played / self.speaker.sample_rate, heard)
        if played == 0:  # nothing was audible, so no end notice will come
            self.finish(turn, self.clock.now(), "", reason)
        else:
            self._cut[turn.id] = (reason, heard)

    def on_notice(self, notice: PlaybackNotice, t: float) -> None:
        """What the speaker did with a turn's audio (``t``: when it was heard)."""
        match notice.kind:
            case NoticeKind.START:
                self.bus.publish(PlaybackStart(t, notice.turn))
                return
            case NoticeKind.PAUSE:
                self._paused_at[notice.turn] = t
                return
            case NoticeKind.RESUME:
                self._paused_at.pop(notice.turn, None)
                return
        # A flushed turn went quiet when it was paused, not when it was dropped.
        t = self._paused_at.pop(notice.turn, t) if notice.flushed else t
        self.bus.publish(PlaybackEnd(t, notice.turn, played_s=notice.played_samples / self.speaker.sample_rate))
        reason = Reason.ANSWERED
        if notice.flushed:
            reason = self._cut.get(notice.turn, (Reason.INTERRUPTED, ""))[0]
        self._cut.pop(notice.turn, None)
        turn = self._turns.get(notice.turn)
        if turn is not None:
            self.finish(turn, t, notice.heard, reason)

    def generated(self, turn: Turn) -> None:
        """The reply is all made: it ends when the speaker has played it (a notice),
        now if nothing was queued; a speculative turn is finished when it commits."""
        turn.generation_done = True
        if turn.state is TurnState.COMMITTED and not self.speaker.finish(turn.id):
            self.finish(turn, self.clock.now(), "", Reason.ANSWERED)

    def finish(self, turn: Turn, t: float, reply: str, reason: Reason) -> None:
        """The turn is over: its exchange goes into the history, its end is published."""
        if turn.state is TurnState.DONE:
            return
        turn.end()
        self._turns.pop(turn.id, None)
        if reason is Reason.ANSWERED and turn.failed and (not reply or turn.apologized):
            reason = Reason.ERROR
        if reason.kept_in_history and turn.user_text:
            self.history.add(Exchange(turn.id, turn.user_text, reply, reason.cut_off))
            self.on_exchange()
        self.bus.publish(TurnEnd(t, turn.id, turn.user_text, reply, reason=reason))

    def close(self) -> None:
        """Shutdown: the reply that is playing ends here, as heard so far."""
        now = self.clock.now()
        for turn in list(self._turns.values()):
            if turn.state is TurnState.COMMITTED:
                heard = self.speaker.heard_text(turn.id)
                self.speaker.flush(turn.id)
                self.finish(turn, now, heard, Reason.SHUTDOWN)
            elif turn.id in self._cut:  # its end notice will not come now
                reason, heard = self._cut[turn.id]
                self.finish(turn, now, heard, reason)
            turn.cancel()
        self._cut.clear()
