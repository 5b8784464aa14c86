"""Per-turn latency breakdown, computed from the event stream.

Every figure is milliseconds after the end of the user's speech (``speech_end``),
so the columns read as a timeline of one turn: when the endpointer decided,
when the final transcript, the first token, the first clause and the first
synthesized audio existed, and when the first reply sample was played
(voice-to-voice). Speculative work can make some of them negative: it finished
before the end of turn was confirmed, which is the point.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from voiceagent.events import (
    AnyEvent,
    AsrFinal,
    BargeIn,
    EndOfTurn,
    Event,
    LlmFirstClause,
    LlmFirstToken,
    PlaybackEnd,
    PlaybackStart,
    Reason,
    SpeechEnd,
    SpeechStart,
    TtsFirstAudio,
    TurnEnd,
)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("endpoint", "endpoint delay"),
    ("asr_final", "ASR final"),
    ("llm_first_token", "LLM 1st token"),
    ("first_clause", "1st clause"),
    ("tts_first_audio", "TTS 1st audio"),
    ("v2v", "voice-to-voice"),
)

_MARKS: dict[type[Event], str] = {
    EndOfTurn: "endpoint",
    AsrFinal: "asr_final",
    LlmFirstToken: "llm_first_token",
    LlmFirstClause: "first_clause",
    TtsFirstAudio: "tts_first_audio",
    PlaybackStart: "v2v",
}


@dataclass
class TurnRecord:
    turn: int
    speech_start: float | None = None
    speech_end: float | None = None
    marks: dict[str, float] = field(default_factory=dict)
    """Seconds on the input timeline, by column key."""
    text: str = ""
    reply: str = ""
    reason: Reason | None = None

    def ms(self, key: str) -> float | None:
        if self.speech_end is None or key not in self.marks:
            return None
        return (self.marks[key] - self.speech_end) * 1000


@dataclass
class BargeInRecord:
    turn: int
    """The interrupted turn."""
    by_turn: int
    onset: float
    """Seconds: when the interrupting speech began."""
    stopped: float | None = None
    """Seconds: when the reply's output went quiet."""

    @property
    def stop_ms(self) -> float | None:
        """Milliseconds from the onset of the interruption to silence."""
        return None if self.stopped is None else (self.stopped - self.onset) * 1000


class LatencyTracker:
    """Event listener that keeps one record per turn, and one per barge-in."""

    def __init__(self) -> None:
        self.turns: dict[int, TurnRecord] = {}
        self.barge_ins: list[BargeInRecord] = []

    def __call__(self, event: AnyEvent) -> None:
        if event.turn == 0:
            return
        rec = self.turns.setdefault(event.turn, TurnRecord(event.turn))
        if isinstance(event, SpeechStart):
            rec.speech_start = event.t
        elif isinstance(event, BargeIn):
            by = self.turns.get(event.by_turn)
            onset = by.speech_start if by is not None and by.speech_start is not None else event.t
            self.barge_ins.append(BargeInRecord(event.turn, event.by_turn, onset))
        elif isinstance(event, PlaybackEnd):
            for b in self.barge_ins:
                if b.turn == event.turn and b.stopped is None:
                    b.stopped = event.t
        if isinstance(event, SpeechEnd):
            rec.speech_end = event.t
        elif isinstance(event, TurnEnd):
            rec.text, rec.reply, rec.reason = event.text, event.reply, event.reason
        elif (key := _MARKS.get(type(event))) is not None:
            rec.marks.setdefault(key, event.t)

    def answered(self) -> list[TurnRecord]:
        return [
            r
            for r in self.turns.values()
            if r.reason is not None and r.reason.replied and "v2v" in r.marks
        ]


def unanswered_reason(tracker: LatencyTracker) -> str:
    """Why no turn was answered, in words: no speech at all, or how each ended."""
    reasons = [str(r.reason or "unfinished") for r in tracker.turns.values()]
    if not reasons:
        return "no speech was heard"
    counts = {reason: reasons.count(reason) for reason in dict.fromkeys(reasons)}
    ended = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in counts.items())
    return f"{len(reasons)} utterance{'s' if len(reasons) != 1 else ''} heard, ended as: {ended}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_table(records: list[TurnRecord]) -> str:
    """The per-turn latency table (ms after end of speech), with a median row;
    one line saying so when no turn was answered."""
    if not records:
        return "latency: no turn was answered"
    header = ["turn"] + [label for _, label in COLUMNS]
    rows = [[str(r.turn)] + [_fmt(r.ms(key)) for key, _ in COLUMNS] for r in records]
    if len(records) > 1:
        medians = []
        for key, _ in COLUMNS:
            values = [v for r in records if (v := r.ms(key)) is not None]
            medians.append(_fmt(statistics.median(values)) if values else "-")
        rows.append(["median"] + medians)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "latency, ms after the end of the user's speech:\n" + "\n".join(lines)


def format_barge_ins(records: list[BargeInRecord]) -> str:
    """One line per interruption: how fast the reply went quiet."""
    lines = []
    for b in records:
        stop = "-" if b.stop_ms is None else f"{b.stop_ms:.0f} ms"
        lines.append(f"turn {b.turn} interrupted by turn {b.by_turn}: quiet {stop} after its onset")
    return "\n".join(lines)
