"""The conversation log: one JSON line per turn, on disk as soon as the turn ends.

Each line is a turn addressed to the assistant::

    {"time": "2026-11-21T20:58:03.123+00:00", "turn": 3, "source": "voice",
     "transcript": "What time is it?", "reply": "It is ...", "reason": "answered",
     "interrupted": false, "latency_ms": 512}

``source`` is ``voice``, ``ask`` or ``say`` (the last two typed, from Home
Assistant); ``latency_ms`` is from the end of the request (the user's speech, or
the typed request arriving) to the first sound of the reply, null when nothing
was played. A turn that carried out a command of the house has an ``intent``:
``{"intent": "HassTurnOn", "slots": {...}, "targets": ["light.office"], "result": "done"}``. Speech that was not addressed to the assistant (no wake word) and
turns with no words are not logged (a house's conversations stay out of it), nor
is the assistant's own voice or a knock heard over a reply.
Each line is written whole and fsynced, so a crash (even SIGKILL) loses at most
the turn in progress, and the file always parses. A full disk (ENOSPC) or any
other write error is logged once; the turns that could not be written wait in
memory (up to ``MAX_PENDING`` of them, the oldest dropped beyond that and
counted), and go out in order after the next turn once there is room again. A
line written only in part is cut off again, so no torn line is left behind.
The file is created readable by its owner only: it holds what was said in the house.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from voiceagent.errors import VoiceAgentError
from voiceagent.events import AnyEvent, IntentHandled, PlaybackStart, Reason, SpeechEnd, TextRequest, TurnEnd

logger = logging.getLogger(__name__)

MAX_PENDING = 1000
"""Turns kept in memory while the log cannot be written (a few hundred kB)."""


@dataclass(frozen=True)
class TurnSummary:
    """One finished turn, as the log and Home Assistant show it."""

    turn: int
    source: str
    """``voice``, or the typed command: ``ask`` or ``say``."""
    transcript: str
    reply: str
    """What was played of the reply."""
    reason: Reason
    """As in ``TurnEnd``."""
    latency_ms: int | None
    """Milliseconds from the end of the request (the user's last pause, or the typed
    request arriving) to the first reply sample; None when nothing was played."""
    intent: dict[str, object] | None = None
    """The command of the house it carried out (intent, slots, targets, result), if any."""

    @property
    def interrupted(self) -> bool:
        return self.reason.cut_off and bool(self.reply)


class TurnSummaries:
    """Event listener that hands a ``TurnSummary`` of each turn, when it ends, to
    every one of ``sinks`` (the conversation log, the MQTT states)."""

    def __init__(self, sinks: list[Callable[[TurnSummary], None]]) -> None:
        self.sinks = sinks
        self._request_end: dict[int, float] = {}
        self._first_sound: dict[int, float] = {}
        self._sources: dict[int, str] = {}
        self._intents: dict[int, dict[str, object]] = {}

    def __call__(self, event: AnyEvent) -> None:
        match event:
            case SpeechEnd(turn=turn):
                self._request_end[turn] = event.t  # the last pause is the one that counts
            case TextRequest(turn=turn, command=command):
                self._request_end[turn] = event.t
                self._sources[turn] = command
            case PlaybackStart(turn=turn):
                self._first_sound.setdefault(turn, event.t)
            case IntentHandled(turn=turn):
                self._intents[turn] = {
                    "intent": event.intent, "slots": event.slots, "targets": list(event.targets),
                    "result": event.result,
                }
            case TurnEnd(turn=turn):
                end, sound = self._request_end.pop(turn, None), self._first_sound.pop(turn, None)
                latency = None if end is None or sound is None else round((sound - end) * 1000)
                summary = TurnSummary(
                    turn, self._sources.pop(turn, "voice"), event.text, event.reply, event.reason, latency,
                    self._intents.pop(turn, None),
                )
                for sink in self.sinks:
                    sink(summary)


class ConversationLog:
    """Appends every turn (a ``TurnSummaries`` sink) to ``path`` as a JSON line."""

    def __init__(self, path: Path, session: str | None = None) -> None:
        self.path = path
        self.session = session
        """The room's name, in every record (None: left out)."""
        self._pending: deque[bytes] = deque()
        self._failing: str | None = None
        """Why the last write failed, while it fails (warned about once)."""
        self._dropped = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as err:
            raise VoiceAgentError(
                f"cannot open the conversation log {path}: {err.strerror}",
                "set serve.conversation_log to a writable file, or null",
            ) from None

    def __call__(self, turn: TurnSummary) -> None:
        if not turn.reason.logged:
            return
        self.write({
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            **({"session": self.session} if self.session is not None else {}),
            "turn": turn.turn,
            "source": turn.source,
            "transcript": turn.transcript,
            "reply": turn.reply,
            "reason": turn.reason,
            "interrupted": turn.interrupted,
            "latency_ms": turn.latency_ms,
            **({"intent": turn.intent} if turn.intent is not None else {}),
        })

    @property
    def pending(self) -> int:
        """Turns waiting in memory for the log to be writable again."""
        return len(self._pending)

    def write(self, record: dict[str, object]) -> None:
        self._pending.append((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        if len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            self._dropped += 1
        self._drain()

    def _drain(self) -> None:
        caught_up = len(self._pending)
        while self._pending:
            line = self._pending[0]
            try:
                self._append(line)
            except OSError as err:  # a full disk must not take the assistant down
                if self._failing is None:
                    logger.error(
                        "cannot write the conversation log %s: %s; keeping up to %d turns in "
                        "memory until it can be written again", self.path, err.strerror or err, MAX_PENDING,
                    )
                self._failing = str(err)
                return
            self._pending.popleft()
        if self._failing is not None:
            lost = f", {self._dropped} older ones lost" if self._dropped else ""
            logger.warning("the conversation log %s is written again (%d turns caught up%s)",
                           self.path, caught_up, lost)
            self._failing, self._dropped = None, 0

    def _append(self, line: bytes) -> None:
        """Write ``line`` whole or not at all."""
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, line)
            if written < len(line):
                os.write(self._fd, line[written:])  # usually fails in turn: ENOSPC
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, size)  # no torn line; if this fails too, both are logged
            raise

    def close(self) -> None:
        if self._pending:
            self._drain()
        if self._pending:
            logger.error("%d turns could not be written to the conversation log %s", len(self._pending), self.path)
        os.close(self._fd)
