"""What a session shows and records as it happens: the console lines, the JSONL
event log and the latency table (``metrics.LatencyTracker``)."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator, TextIO

from voiceagent.events import AnyEvent, AsrFinal, AsrPartial, ErrorEvent, EventBus, JsonlEventLog, Reason, TurnEnd
from voiceagent.metrics import LatencyTracker

logger = logging.getLogger(__name__)


class ConsoleDisplay:
    """Prints the conversation as it happens (to stderr: stdout may carry PCM).

    ``room``: the session's name before each line, when the process has several."""

    def __init__(self, out: TextIO = sys.stderr, room: str | None = None) -> None:
        self.out = out
        self.prefix = f"{room}: " if room else ""

    def __call__(self, event: AnyEvent) -> None:
        p = self.prefix
        match event:
            case AsrFinal(turn=turn, text=text):
                print(f"[{event.t:7.2f}s] {p}turn {turn} you:       {text}", file=self.out)
            case TurnEnd(turn=turn, reply=reply, reason=Reason.ANSWERED):
                print(f"[{event.t:7.2f}s] {p}turn {turn} assistant: {reply}", file=self.out)
            case TurnEnd(turn=turn, reason=reason):
                print(f"[{event.t:7.2f}s] {p}turn {turn} ({reason.replace('_', ' ')})", file=self.out)
            case ErrorEvent(stage=stage, text=text):
                print(f"[{event.t:7.2f}s] {p}error in {stage}: {text}", file=self.out)
            case AsrPartial(text=text):
                logger.info("%spartial: %s", p, text)
            case _:
                pass


@contextlib.contextmanager
def event_sinks(
    events_path: str | None, display: bool = True, session: str = "default"
) -> Iterator[tuple[EventBus, LatencyTracker]]:
    """A session's event bus with the latency tracker, the console and the JSONL log."""
    bus = EventBus(session)
    tracker = LatencyTracker()
    bus.subscribe(tracker)
    if display:
        bus.subscribe(ConsoleDisplay())
    log_file = None
    try:
        if events_path:
            log_file = open(events_path, "w", encoding="utf-8")
            bus.subscribe(JsonlEventLog(log_file))
        yield bus, tracker
    finally:
        if log_file is not None:
            log_file.close()
