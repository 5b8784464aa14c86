"""Figures of one run, from its events and its aligned output. Pure: no models, no clock.

Events are dicts as in the JSONL log (``Event.to_dict()``): the documented
schema, which an external tool or a saved log can produce too. The output is
the speaker signal aligned with the input (sample k played while input sample k
was captured), so latencies are read off it where they are heard.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from voiceagent.bench.corpus import Corpus
from voiceagent.bench.wer import normalize, word_errors
from voiceagent.events import Reason

QUIET = 0.01
"""Output peak (-40 dBFS) at or below which the speaker counts as silent."""
HOLD_S = 0.2
"""Seconds the output must stay silent to count as stopped."""

STAGES: tuple[tuple[str, str], ...] = (
    # (figure, event type), in pipeline order; each in ms after the true end of speech.
    ("endpoint_ms", "end_of_turn"),
    ("asr_final_ms", "asr_final"),
    ("llm_first_token_ms", "llm_first_token"),
    ("first_clause_ms", "llm_first_clause"),
    ("tts_first_audio_ms", "tts_first_audio"),
)

Event = Mapping[str, object]


def first_sound(out: np.ndarray, start: int, stop: int, threshold: float = QUIET) -> int | None:
    """First sample in [start, stop) whose magnitude exceeds ``threshold``, or None."""
    start = max(start, 0)
    loud = np.flatnonzero(np.abs(out[start:stop]) > threshold)
    return start + int(loud[0]) if loud.size else None


def sound_onset(out: np.ndarray, start: int, stop: int, rate: int, hold_s: float = HOLD_S) -> int | None:
    """First sample in [start, stop) above ``QUIET`` after at least ``hold_s`` of silence
    (sound that merely goes on from before ``start`` is no onset), or None."""
    window = rate // 100
    quiet_needed = round(hold_s * 100)
    k = max(start - quiet_needed * window, 0)
    quiet = 0
    while k < min(stop, out.size):
        loud = first_sound(out, k, min(k + window, stop))
        if loud is not None and loud >= start and quiet >= quiet_needed:
            return loud
        quiet = 0 if loud is not None else quiet + 1
        k += window
    return None


def quiet_after(out: np.ndarray, t: float, rate: int, hold_s: float = HOLD_S) -> float:
    """Seconds from ``t`` until the output stays silent for ``hold_s``, in 10 ms steps
    (inf if it never does)."""
    window, k, run = rate // 100, int(t * rate), 0
    needed = round(hold_s * 100)
    while k + window <= out.size:
        run = run + 1 if np.abs(out[k : k + window]).max() <= QUIET else 0
        if run == needed:
            return (k + window) / rate - hold_s - t
        k += window
    return math.inf


def last_by_type(events: Iterable[Event]) -> dict[int, dict[str, Event]]:
    """Per turn, the last event of each type (a later one supersedes work redone)."""
    turns: dict[int, dict[str, Event]] = {}
    for e in events:
        turn = int(e["turn"])  # type: ignore[call-overload]
        if turn:
            turns.setdefault(turn, {})[str(e["type"])] = e
    return turns


def _t(e: Event) -> float:
    return float(e["t"])  # type: ignore[arg-type]


def overlaps(intervals: Sequence[tuple[float, float]], a: float, b: float) -> bool:
    """True if any (start, end) interval overlaps [a, b]."""
    return any(s < b and e > a for s, e in intervals)


@dataclass(frozen=True)
class UtteranceResult:
    """What happened to one corpus utterance. Times in ms after its true speech end."""

    index: int
    text: str
    has_pause: bool
    start_s: float
    """True speech start, seconds on the timeline."""
    end_s: float
    """True speech end, seconds on the timeline."""
    turns: tuple[int, ...]
    """Turns that began between the previous utterance's end and this one's."""
    reply_turn: int | None
    """The turn whose reply was played after the speech (None: no reply)."""
    v2v_ms: float | None
    """True end of speech to the first reply sample above ``QUIET`` in the output."""
    endpoint_ms: float | None = None
    asr_final_ms: float | None = None
    llm_first_token_ms: float | None = None
    first_clause_ms: float | None = None
    tts_first_audio_ms: float | None = None
    playback_ms: float | None = None
    """The reply turn's playback_start event (cross-check of ``v2v_ms``)."""
    premature: bool = False
    """The turn was ended (or a reply started) before the true end of speech."""
    transcript: str = ""
    """The final transcripts of ``turns``, joined."""
    word_errors: int = 0
    ref_words: int = 0
    playing_at_end: bool = False
    """The output was already sounding when the speech ended (v2v then reads 0)."""
    overlaps_next: bool = False
    """Reply audio was still sounding when the next utterance began."""
    outcomes: tuple[str, ...] = ()
    """How each of ``turns`` ended: "7 answered", "5 interrupted", "8 answered, empty"."""
    reply: str = ""
    """What the reply turn said (only what was played)."""
    talked_over_s: float = 0.0
    """Seconds of reply audio heard between the true start and end of the speech
    (its pauses included): the assistant talking while the user was speaking."""
    answered_turns: int = 0
    """Of ``turns``, those answered or cut while answering (kept in the history):
    more than one is an utterance split into several turns."""

    @property
    def split(self) -> bool:
        return self.answered_turns > 1

    @property
    def answered(self) -> bool:
        return self.v2v_ms is not None

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.ref_words, 1)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["turns"] = list(self.turns)
        data["outcomes"] = list(self.outcomes)
        data["wer"] = round(self.wer, 4)
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = round(value, 1 if key.endswith("_ms") else 4)
        return data


def measure_utterances(
    corpus: Corpus, events: Sequence[Event], output: np.ndarray
) -> list[UtteranceResult]:
    """One result per corpus utterance of a run of the real pipeline."""
    rate = corpus.rate
    turns = last_by_type(events)
    results = []
    previous_end = 0.0
    for i, u in enumerate(corpus.utterances):
        start_s, end_s = u.start / rate, u.end / rate
        members = tuple(sorted(
            turn for turn, ev in turns.items()
            if "speech_start" in ev and previous_end <= _t(ev["speech_start"]) < end_s
        ))
        previous_end = end_s
        played = [t for t in members if "playback_start" in turns[t]]
        after = [t for t in played if _t(turns[t]["playback_start"]) >= end_s - 0.05]
        reply = after[0] if after else (played[-1] if played else None)
        # Ended early: an end of turn, or a reply, while the user was still speaking.
        premature = any(
            kind in turns[t] and start_s < _t(turns[t][kind]) < end_s
            for t in members for kind in ("end_of_turn", "playback_start")
        )
        # Words count only where they reached a turn that went on: a fragment
        # rejected as noise, or the first part of an utterance merged into its
        # continuation, is not what was answered.
        kept = [t for t in members if _kept(turns[t].get("turn_end"))]
        transcript = " ".join(
            str(turns[t]["asr_final"]["text"]).strip() for t in kept if "asr_final" in turns[t]
        ).strip()
        outcomes = tuple(_outcome(t, turns[t].get("turn_end")) for t in members)
        reply_end = turns[reply].get("turn_end") if reply is not None else None
        stages: dict[str, float | None] = {}
        if reply is not None:
            for key, kind in STAGES + (("playback_ms", "playback_start"),):
                ev = turns[reply].get(kind)
                stages[key] = None if ev is None else (_t(ev) - end_s) * 1000
        results.append(UtteranceResult(
            i, u.text, u.has_pause, start_s, end_s, members, reply,
            _v2v_ms(output, u.end, corpus.window_end(i), rate),
            premature=premature,
            transcript=transcript,
            word_errors=word_errors(u.text, transcript),
            ref_words=len(normalize(u.text)),
            playing_at_end=first_sound(output, u.end - rate // 50, u.end) is not None,
            overlaps_next=_sounds_before_next(output, corpus, i),
            outcomes=outcomes,
            reply="" if reply_end is None else str(reply_end.get("reply", "")),
            talked_over_s=sound_s(output, u.start, u.end, rate),
            answered_turns=sum(
                r is not None and r.replied for t in members if (r := _reason(turns[t].get("turn_end")))
            ),
            **stages,  # type: ignore[arg-type]
        ))
    return results


def _reason(end: Event | None) -> Reason | None:
    try:
        return None if end is None else Reason(str(end.get("reason")))
    except ValueError:  # a log from another version
        return None


def _kept(end: Event | None) -> bool:
    """A turn whose words were answered (or that has not ended: still counts)."""
    reason = _reason(end)
    return end is None or (reason is not None and reason.kept_in_history)


def sound_s(out: np.ndarray, start: int, stop: int, rate: int) -> float:
    """Seconds of [start, stop) in which the output sounds, in 10 ms windows."""
    window = rate // 100
    seg = np.abs(out[max(start, 0) : min(stop, out.size)])
    n = seg.size // window
    if n == 0:
        return 0.0
    loud = seg[: n * window].reshape(n, window).max(axis=1) > QUIET
    return float(loud.sum()) * window / rate


def _outcome(turn: int, end: Event | None) -> str:
    if end is None:
        return f"{turn} not ended"
    reason = str(end.get("reason", ""))
    empty = reason == "answered" and not str(end.get("reply", "")).strip()
    return f"{turn} {reason}{', empty' if empty else ''}"


def measure_output(corpus: Corpus, output: np.ndarray) -> list[UtteranceResult]:
    """Results from an aligned output alone (an external peer: no events).

    Only the voice-to-voice and premature replies can be told: a reply is
    premature if one began (out of silence) between the true start and end of
    speech; a previous reply running on into the question is not one.
    """
    rate = corpus.rate
    results = []
    for i, u in enumerate(corpus.utterances):
        results.append(UtteranceResult(
            i, u.text, u.has_pause, u.start / rate, u.end / rate, (), None,
            _v2v_ms(output, u.end, corpus.window_end(i), rate),
            premature=sound_onset(output, u.start, u.end, rate) is not None,
            ref_words=len(normalize(u.text)),
            talked_over_s=sound_s(output, u.start, u.end, rate),
            playing_at_end=first_sound(output, u.end - rate // 50, u.end) is not None,
            overlaps_next=_sounds_before_next(output, corpus, i),
        ))
    return results


def _v2v_ms(output: np.ndarray, end: int, window_end: int, rate: int) -> float | None:
    k = first_sound(output, end, window_end)
    return None if k is None else (k - end) / rate * 1000


def _sounds_before_next(output: np.ndarray, corpus: Corpus, i: int) -> bool:
    if i + 1 >= len(corpus.utterances):
        return False
    nxt = corpus.utterances[i + 1].start
    return first_sound(output, nxt - corpus.rate // 10, nxt) is not None


def premature_rates(results: Sequence[UtteranceResult]) -> tuple[float | None, float | None]:
    """(share of utterances with a pause ended early, share of all ended early)."""
    paused = [r for r in results if r.has_pause]
    with_pause = sum(r.premature for r in paused) / len(paused) if paused else None
    overall = sum(r.premature for r in results) / len(results) if results else None
    return with_pause, overall


def corpus_wer(results: Sequence[UtteranceResult]) -> float | None:
    """Word errors over all reference words."""
    words = sum(r.ref_words for r in results)
    return sum(r.word_errors for r in results) / words if words else None


@dataclass(frozen=True)
class FalseAlarms:
    barge_ins: int
    """Barge-ins on replies that no user speech overlapped."""
    reply_s: float
    """Seconds of reply audio played that no user speech overlapped."""


def false_barge_ins(events: Sequence[Event], speech: Sequence[tuple[float, float]]) -> FalseAlarms:
    """Barge-ins nobody caused, and the reply time they could have happened in.

    ``speech`` holds the user's true speech intervals in seconds. A barge-in is
    real if user speech overlapped the interrupting utterance, from its onset
    (``by_turn``'s speech_start, less a frame or so of slack) to the barge-in:
    that includes a reply started, or held, in a mid-sentence pause.
    """
    starts: dict[int, float] = {}
    onsets: dict[int, float] = {}
    ends: dict[int, Event] = {}
    count = 0
    for e in events:
        turn = int(e["turn"])  # type: ignore[call-overload]
        if e["type"] == "playback_start":
            starts.setdefault(turn, _t(e))
        elif e["type"] == "speech_start":
            onsets.setdefault(turn, _t(e))
        elif e["type"] == "playback_end":
            ends[turn] = e
        elif e["type"] == "barge_in":
            onset = onsets.get(int(e.get("by_turn", 0)), _t(e))  # type: ignore[call-overload]
            count += not overlaps(speech, onset - 0.1, _t(e))
    reply_s = sum(
        float(end.get("played_s", 0.0))  # type: ignore[arg-type]
        for turn, end in ends.items()
        if turn in starts and not overlaps(speech, starts[turn], _t(end))
    )
    return FalseAlarms(count, reply_s)


def paused_s(events: Iterable[Event]) -> float:
    """Total seconds replies spent paused by suspected barge-ins that were rejected."""
    total, since = 0.0, None
    for e in events:
        if e["type"] == "barge_in_suspected":
            since = _t(e)
        elif e["type"] == "barge_in_rejected" and since is not None:
            total += _t(e) - since
            since = None
    return total
