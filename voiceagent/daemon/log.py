"""The conversation log: one JSON line per turn, on disk as soon as the turn ends.

Each line is a turn addressed to the assistant::

    {"time": "2026-11-21T20:58:03.123+00:00", "turn": 3, "source": "voice",
     "transcript": "What time is it?", "reply": "It is ...", "reason": "answered",
     "interrupted": false, "latency_ms": 512}

``source`` is ``voice``, ``ask`` or ``say`` (the last two typed, from Home
Assistant); ``latency_ms`` is from the end of the request (the user's speech, or
the typed request arriving) to the first sound of the reply, null when nothing
was played. Speech that was not addressed to the assistant (no wake word) and
turns with no words are not logged (a house's conversations stay out of it), nor
is the assistant's own voice or a knock heard over a reply.
Each line is flushed and fsynced, so a crash loses at most the turn in progress.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from voiceagent.errors import VoiceAgentError
from voiceagent.events import Event, PlaybackStart, SpeechEnd, TextRequest, TurnEnd

logger = logging.getLogger(__name__)

NOT_LOGGED = ("not_addressed", "no_speech", "wake_word", "echo", "noise")
"""Turn endings that are not turns of a conversation with the assistant: no wake
word, no words, the wake word alone, the assistant's own voice, a knock."""

REQUESTS = ("answered", "interrupted", "stopped", "error", "shutdown")
"""Turn endings of a request (not a backchannel or an unclear sound over a reply)."""

CUT_OFF = ("interrupted", "stopped", "shutdown")
"""Turn endings that cut the reply short."""


class TurnLatency:
    """Milliseconds from the end of each request to the first sound of its reply."""

    def __init__(self) -> None:
        self._request_end: dict[int, float] = {}
        self._first_sound: dict[int, float] = {}

    def __call__(self, event: Event) -> None:
        match event:
            case SpeechEnd(turn=turn) | TextRequest(turn=turn):
                self._request_end[turn] = event.t  # the last pause is the one that counts
            case PlaybackStart(turn=turn):
                self._first_sound.setdefault(turn, event.t)

    def pop(self, turn: int) -> int | None:
        """The turn's latency (None: nothing played), forgetting the turn."""
        end, sound = self._request_end.pop(turn, None), self._first_sound.pop(turn, None)
        if end is None or sound is None:
            return None
        return round((sound - end) * 1000)


class ConversationLog:
    """Event listener appending every turn to ``path`` as a JSON line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = open(path, "a", encoding="utf-8")
        except OSError as err:
            raise VoiceAgentError(
                f"cannot open the conversation log {path}: {err.strerror}",
                "set serve.conversation_log to a writable file, or null",
            ) from None
        self._latency = TurnLatency()
        self._sources: dict[int, str] = {}

    def __call__(self, event: Event) -> None:
        self._latency(event)
        if isinstance(event, TextRequest):
            self._sources[event.turn] = event.command
        elif isinstance(event, TurnEnd):
            latency = self._latency.pop(event.turn)
            source = self._sources.pop(event.turn, "voice")
            if event.reason in NOT_LOGGED:
                return
            self.write({
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "turn": event.turn,
                "source": source,
                "transcript": event.text,
                "reply": event.reply,
                "reason": event.reason,
                "interrupted": event.reason in CUT_OFF and bool(event.reply),
                "latency_ms": latency,
            })

    def write(self, record: dict[str, object]) -> None:
        try:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as err:  # a full disk must not take the assistant down
            logger.error("cannot write the conversation log %s: %s", self.path, err)

    def close(self) -> None:
        self._file.close()
