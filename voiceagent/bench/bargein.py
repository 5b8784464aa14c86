"""The barge-in phase: the user talks over each reply, through a simulated room echo.

Each question is followed, at a fixed time after its true end of speech, by an
interruption that should land about ``REPLY_INTO_S`` into the reply. The stop
latency is read off the aligned output as ``benchmarks/barge_in.py`` does: from
the interruption's onset to the output staying silent for 200 ms. The
interruptions are questions too: their replies, which nobody talks over, are
where false barge-ins (the assistant's own echo taken for the user) would show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from voiceagent.bench.corpus import LEAD_S, espeak_ssml, pink_noise, speech_bounds
from voiceagent.bench.measure import HOLD_S, QUIET, Event, first_sound, last_by_type, quiet_after

QUESTIONS: tuple[tuple[str, str], ...] = (
    # (voice, text): open questions, so that the reply is still playing when interrupted.
    ("en-us+m3", "Can you tell me something interesting about the ocean?"),
    ("en-gb", "Tell me about the history of the Roman empire."),
    ("en-us+f2", "Can you explain how the weather works?"),
    ("en-gb-scotland", "What can you tell me about the planet Mars?"),
    ("en-us", "Describe how a steam engine works."),
    ("en+f4", "Tell me something about the life of bees."),
)

INTERRUPTIONS: tuple[tuple[str, str, float], ...] = (
    # (voice, text, seconds after the question in benchmarks/barge_in.py)
    ("en-us+m3", "Wait, what is the capital of Spain?", 2.4),
    ("en-us+f3", "Stop. Tell me about the moon instead.", 2.8),
    ("en+m1", "Hold on, how tall is Mount Everest?", 3.2),
    ("en-gb+f2", "Sorry, what time is it in Tokyo?", 2.6),
    ("en-us+m5", "No no, I meant the desert.", 3.0),
    ("en-us+f4", "Actually, tell me a joke.", 2.2),
)

REPLY_INTO_S = 1.2
"""Seconds into the reply at which the interruption should begin."""
WPM = 160
GAIN = 0.7
NOISE_DBFS = -45.0


@dataclass(frozen=True)
class BargeInTimeline:
    rate: int
    """Hertz."""
    audio: np.ndarray
    questions: tuple[tuple[int, int], ...]
    """True speech (start, end) of each question, samples."""
    interruptions: tuple[tuple[int, int], ...]
    """True speech (start, end) of each interruption, samples."""
    texts: tuple[tuple[str, str], ...]
    """(question, interruption) texts."""

    def speech_s(self) -> list[tuple[float, float]]:
        """Every true speech interval, seconds."""
        spans = sorted(self.questions + self.interruptions)
        return [(a / self.rate, b / self.rate) for a, b in spans]


def build_timeline(
    turns: int, offset_s: float, rate: int = 16000, gap_s: float = 8.0, seed: int = 0
) -> BargeInTimeline:
    """``turns`` questions, each interrupted ``offset_s`` after its true end."""
    parts = [np.zeros(int(LEAD_S * rate), np.float32)]
    pos = parts[0].size
    questions, interruptions, texts = [], [], []
    for k in range(turns):
        q_voice, q_text = QUESTIONS[k % len(QUESTIONS)]
        i_voice, i_text, _ = INTERRUPTIONS[k % len(INTERRUPTIONS)]
        q = GAIN * espeak_ssml(f"<speak>{q_text}</speak>", rate, q_voice, WPM)
        q_start, q_end, _ = speech_bounds(q / GAIN, rate)
        i = GAIN * espeak_ssml(f"<speak>{i_text}</speak>", rate, i_voice, WPM)
        i_start, i_end, _ = speech_bounds(i / GAIN, rate)
        # The interruption's first sound lands exactly offset_s after the question's last.
        wait = np.zeros(max(int(offset_s * rate) - i_start, 0), np.float32)
        parts += [q[:q_end], wait, i[:i_end], np.zeros(int(gap_s * rate), np.float32)]
        questions.append((pos + q_start, pos + q_end))
        at = pos + q_end + wait.size
        interruptions.append((at + i_start, at + i_end))
        texts.append((q_text, i_text))
        pos = at + i_end + parts[-1].size
    audio = np.concatenate(parts)
    audio += pink_noise(audio.size, NOISE_DBFS, np.random.default_rng(seed))
    return BargeInTimeline(rate, audio, tuple(questions), tuple(interruptions), tuple(texts))


@dataclass(frozen=True)
class Interruption:
    index: int
    onset_s: float
    """True onset of the interrupting speech, seconds on the timeline."""
    reply_playing: bool
    """The reply was audible in the 300 ms before the onset (else nothing to stop)."""
    stop_ms: float | None
    """Onset to output silent for 200 ms; None when there was nothing to stop or it never stopped."""
    resumed: bool
    """After going silent, the reply sounded again before the interruption ended
    (a pause whose suspicion was rejected, then confirmed later)."""
    barge_in: bool
    """A barge_in event followed within 3 s of the onset."""
    answered: bool
    """The interrupting utterance's turn ended answered, with a reply that was not empty."""

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index, "onset_s": round(self.onset_s, 4),
            "reply_playing": self.reply_playing,
            "stop_ms": None if self.stop_ms is None else round(self.stop_ms, 1),
            "resumed": self.resumed, "barge_in": self.barge_in, "answered": self.answered,
        }


def measure_interruptions(
    timeline: BargeInTimeline, events: Sequence[Event], output: np.ndarray
) -> list[Interruption]:
    rate = timeline.rate
    barge_times = [float(e["t"]) for e in events if e["type"] == "barge_in"]  # type: ignore[arg-type]
    turns = last_by_type(events)
    results = []
    for k, (start, end) in enumerate(timeline.interruptions):
        onset = start / rate
        before = output[max(start - int(0.3 * rate), 0) : start]
        playing = before.size > 0 and float(np.abs(before).max()) > QUIET
        stop = quiet_after(output, onset, rate) if playing else math.inf
        silent_until = start + int((stop + HOLD_S) * rate) if math.isfinite(stop) else end
        resumed = first_sound(output, silent_until, end) is not None
        answered = any(_answered(ev, onset - 0.5, end / rate) for ev in turns.values())
        results.append(Interruption(
            k, onset, playing,
            stop * 1000 if math.isfinite(stop) else None,
            resumed,
            any(onset <= t <= onset + 3.0 for t in barge_times),
            answered,
        ))
    return results


def _answered(turn: dict[str, Event], lo: float, hi: float) -> bool:
    """A turn begun in [lo, hi) that ended answered with words."""
    start, end = turn.get("speech_start"), turn.get("turn_end")
    return (
        start is not None and end is not None and lo <= float(start["t"]) < hi  # type: ignore[arg-type]
        and end["reason"] == "answered" and bool(str(end.get("reply", "")).strip())
    )
