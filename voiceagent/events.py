"""Typed events: one frozen dataclass per thing that happens in a conversation.

Every event carries the turn it belongs to, the session (the room or client:
a satellite's name) whose turn it is, and a time ``t`` in seconds on that
session's input timeline (seconds since its first input sample). Turn numbers
count from 1 in each session. The same stream feeds the
JSONL event log, the latency table, the CLI display and (later) the MQTT bridge.
``t`` is when the thing happened, which can be earlier than when the event is
published: ``speech_end`` is stamped with the end of the last voiced frame but
only known once the trailing silence has passed, and work done speculatively
before the end of turn is published when the turn commits.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Callable, ClassVar, TextIO, Union

from voiceagent.errors import Stage

logger = logging.getLogger(__name__)


class Reason(StrEnum):
    """How a turn ended (``TurnEnd.reason``). Each consumer asks one of the
    properties below instead of keeping its own list of reasons."""

    ANSWERED = "answered"
    INTERRUPTED = "interrupted"
    """A barge-in cut the reply: ``reply`` is the part played."""
    STOPPED = "stopped"
    """A ``stop`` command or a new typed request cut the reply: ``reply`` is the part played."""
    NO_SPEECH = "no_speech"
    """Empty transcript, or a typical recognizer hallucination."""
    WAKE_WORD = "wake_word"
    """The wake word alone (``serve``)."""
    NOT_ADDRESSED = "not_addressed"
    """No wake word (``serve``)."""
    BACKCHANNEL = "backchannel"
    NOISE = "noise"
    UNCLEAR = "unclear"
    ECHO = "echo"
    """The last four: said over a reply and rejected as an interruption (``bargein.Verdict``)."""
    CONTINUED = "continued"
    """The user went on speaking after the end of the turn: its words are answered
    with the rest in the next turn, and its reply (withdrawn) leaves no trace."""
    ERROR = "error"
    SHUTDOWN = "shutdown"

    @property
    def replied(self) -> bool:
        """A reply to a request was played (it has a latency; the user may follow up)."""
        return self in (Reason.ANSWERED, Reason.INTERRUPTED)

    @property
    def kept_in_history(self) -> bool:
        """The exchange goes into the chat history (as much of the reply as was heard)."""
        return self in (Reason.ANSWERED, Reason.INTERRUPTED, Reason.STOPPED)

    @property
    def is_request(self) -> bool:
        """A request to the assistant, as Home Assistant shows it (not a backchannel)."""
        return self in (Reason.ANSWERED, Reason.INTERRUPTED, Reason.STOPPED, Reason.ERROR, Reason.SHUTDOWN)

    @property
    def cut_off(self) -> bool:
        """The reply was cut short."""
        return self in (Reason.INTERRUPTED, Reason.STOPPED, Reason.SHUTDOWN)

    @property
    def logged(self) -> bool:
        """A turn of a conversation with the assistant, for the conversation log: not
        no wake word, no words, the wake word alone, its own voice or a knock."""
        return self not in (
            Reason.NOT_ADDRESSED, Reason.NO_SPEECH, Reason.WAKE_WORD, Reason.ECHO, Reason.NOISE,
            Reason.CONTINUED,
        )


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"
    t: float
    """Seconds since the first input sample."""
    turn: int
    """Turn number, from 1 in each session; 0 for events that belong to no turn."""
    session: str = field(default="", kw_only=True)
    """The session (a satellite's name) it happened in; stamped by its ``EventBus``."""

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "t": round(self.t, 4), "type": self.type, "session": self.session, "turn": self.turn,
        }
        for f in fields(self):
            if f.name not in ("t", "turn", "session"):
                value = getattr(self, f.name)
                data[f.name] = round(value, 4) if isinstance(value, float) else value
        return data


@dataclass(frozen=True)
class SpeechStart(Event):
    """The user started speaking (t is the onset, before the start criterion)."""

    type: ClassVar[str] = "speech_start"


@dataclass(frozen=True)
class SpeechEnd(Event):
    """The user stopped speaking (t is the end of the last voiced frame)."""

    type: ClassVar[str] = "speech_end"


@dataclass(frozen=True)
class TurnEndJudged(Event):
    """A pause was judged (``rules.turn_end``): how much silence will end the turn."""

    type: ClassVar[str] = "turn_end_judged"
    text: str
    """The transcript up to the pause."""
    probability: float | None
    """The end-of-turn model's probability that the turn is complete (None: no model)."""
    words_probability: float | None
    """The LLM's probability that the user's message ends after these words (None: not asked)."""
    silence_ms: int
    """Milliseconds of silence after which this pause ends the turn."""


@dataclass(frozen=True)
class EndOfTurn(Event):
    """The endpointer decided the turn is over (t is the decision time)."""

    type: ClassVar[str] = "end_of_turn"


@dataclass(frozen=True)
class AsrPartial(Event):
    type: ClassVar[str] = "asr_partial"
    text: str


@dataclass(frozen=True)
class AsrFinal(Event):
    """The final transcript was available (can precede end_of_turn: speculation)."""

    type: ClassVar[str] = "asr_final"
    text: str


@dataclass(frozen=True)
class SpeculationDiscarded(Event):
    """Speech resumed after a pause: work started on the pause is thrown away."""

    type: ClassVar[str] = "speculation_discarded"
    text: str


@dataclass(frozen=True)
class LlmFirstToken(Event):
    type: ClassVar[str] = "llm_first_token"
    text: str


@dataclass(frozen=True)
class LlmFirstClause(Event):
    """The first clause of the reply was complete and handed to the TTS."""

    type: ClassVar[str] = "llm_first_clause"
    text: str


@dataclass(frozen=True)
class TtsFirstAudio(Event):
    type: ClassVar[str] = "tts_first_audio"


@dataclass(frozen=True)
class PlaybackStart(Event):
    """The first sample of the turn's reply reached the output."""

    type: ClassVar[str] = "playback_start"


@dataclass(frozen=True)
class PlaybackEnd(Event):
    """The last sample of the turn's reply left the output (or it was flushed)."""

    type: ClassVar[str] = "playback_end"
    played_s: float
    """Seconds of reply audio actually played."""


@dataclass(frozen=True)
class BargeInSuspected(Event):
    """User speech began over the reply of ``turn``: the reply pauses (or ducks)."""

    type: ClassVar[str] = "barge_in_suspected"
    by_turn: int
    """The turn of the utterance that is talking over it."""


@dataclass(frozen=True)
class BargeIn(Event):
    """The interruption was confirmed: the reply of ``turn`` is stopped for good."""

    type: ClassVar[str] = "barge_in"
    by_turn: int
    """The turn of the interrupting utterance (it is answered next)."""
    played_s: float
    """Seconds of the reply that had been played."""
    heard: str
    """The text of what had been played (what the history keeps)."""


@dataclass(frozen=True)
class BargeInRejected(Event):
    """The suspected interruption was not one: the reply of ``turn`` goes on."""

    type: ClassVar[str] = "barge_in_rejected"
    by_turn: int
    verdict: str
    """``backchannel``, ``noise``, ``unclear`` or ``echo``."""
    text: str
    """What was recognized of it."""


@dataclass(frozen=True)
class ContinuationJudged(Event):
    """Speech soon after the end of turn ``of_turn`` was judged (``rules.continuation``)."""

    type: ClassVar[str] = "continuation"
    of_turn: int
    verdict: str
    """``continuation`` (answered together), ``interruption``, ``backchannel`` or ``noise``."""
    words: str
    """The words it added."""
    gap_s: float
    """Seconds from the end of the earlier turn's speech to this speech."""


@dataclass(frozen=True)
class IntentHandled(Event):
    """A command of the house was carried out (or could not be), once the turn committed."""

    type: ClassVar[str] = "intent"
    intent: str
    """Home Assistant's intent name (``HassTurnOn``)."""
    slots: dict[str, Any]
    """What the command named: ``area``, ``name`` (an entity id), ``domain``, ``brightness``..."""
    targets: tuple[str, ...]
    """The entity ids it acted on or asked about."""
    result: str
    """``done``, ``answered``, ``failed``, ``unavailable`` or ``not_found``."""
    speech: str
    """What the assistant says about it."""
    follow_up: bool = False
    """Home Assistant's conversation agent asked something back: the user may answer
    without the wake word (``WakeGate``)."""


@dataclass(frozen=True)
class RequestAccepted(Event):
    """The turn ended and is answered: its transcript is final (sent to Home Assistant
    now, seconds before the reply has been played)."""

    type: ClassVar[str] = "request"
    text: str


@dataclass(frozen=True)
class TurnEnd(Event):
    type: ClassVar[str] = "turn_end"
    text: str
    """The user's final transcript."""
    reply: str
    """What the assistant said (only what was played)."""
    reason: Reason

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", Reason(self.reason))  # also from a plain string


@dataclass(frozen=True)
class TextRequest(Event):
    """A request typed rather than spoken (Home Assistant's ``say`` and ``ask``)."""

    type: ClassVar[str] = "text_request"
    command: str
    """``say`` (speak ``text`` as it is) or ``ask`` (answer it)."""
    text: str


@dataclass(frozen=True)
class WakeWordDetected(Event):
    type: ClassVar[str] = "wake_word"
    model: str
    probability: float


@dataclass(frozen=True)
class ErrorEvent(Event):
    type: ClassVar[str] = "error"
    stage: Stage
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", Stage(self.stage))


AnyEvent = Union[
    SpeechStart, SpeechEnd, TurnEndJudged, EndOfTurn, AsrPartial, AsrFinal, SpeculationDiscarded,
    LlmFirstToken, LlmFirstClause, TtsFirstAudio, PlaybackStart, PlaybackEnd, BargeInSuspected,
    BargeIn, BargeInRejected, ContinuationJudged, IntentHandled, RequestAccepted, TurnEnd, TextRequest, WakeWordDetected, ErrorEvent,
]
"""Every event there is: a closed set, so a consumer can ``match`` it exhaustively."""

Listener = Callable[[AnyEvent], None]


class EventBus:
    """Synchronous fan-out of one session's events to listeners, in publication
    order. Every event is stamped with the session's name on the way, so the
    dialogue that publishes it never needs to know which session it is."""

    def __init__(self, session: str = "default") -> None:
        self.session = session
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, event: AnyEvent) -> None:
        """Give ``event`` to every listener. A listener that fails (a full disk
        under the event log, a closed stderr) is logged and the others still get
        it: the event was published from the middle of a turn, which must not
        be left half done because of an observer."""
        if event.session != self.session:
            event = replace(event, session=self.session)
        logger.debug("event %s", event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("event listener %r failed on %s", listener, event.type)


class JsonlEventLog:
    """Writes one JSON object per event, flushed per line so nothing is lost."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: AnyEvent) -> None:
        self._stream.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        self._stream.flush()
