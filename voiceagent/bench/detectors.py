"""End-of-turn detectors compared offline on labelled recordings, as LiveKit's eot-bench does.

Every end-of-turn detector trades two failures against each other: firing in a
pause inside the user's sentence (a *cut-off*: the assistant talks over them)
and waiting long after they have finished (dead air). Any detector wins one
alone (fire at once, or never), so a single accuracy figure says nothing.
LiveKit's eot-bench (github.com/livekit/eot-bench) therefore sweeps each
detector's parameter and reports it at two budgets, which this module copies:

- the **cut-off rate at a 300 ms latency budget**: among the parameters whose
  mean wait after true ends is at most 300 ms, the lowest share of turns cut
  off (None when no parameter is that fast);
- the **mean wait at a 5% cut-off budget**: among the parameters that cut off
  at most 5% of turns, the lowest mean wait (None when none is that safe).

Detectors compared, both on webrtcvad's frames as the pipeline sees them (the
``rules.endpointer`` silence count, whose voiced blips shorter than
``resume_ms`` stay silence; by default without the pipeline's noise-floor
correction, ``end_margin_db``, so webrtcvad's ~100 ms hangover is part of
every wait):

- **silence alone**: the turn ends after ``T`` ms of silence;
- **Smart Turn alone**: the end-of-turn model is asked every ``STEP_MS`` of
  each silence (on the audio up to that moment) and the turn ends at the first
  answer at or above the threshold, or after ``FALLBACK_MS`` of silence if it
  never comes (pipecat's stop timeout).

A turn is cut off when its detector fires before the labelled end of speech.
Its wait is the time from that labelled end to the firing, so it includes the
VAD's own delay; a turn that was cut off has no wait (its cost is counted in
the other figure), as eot-bench measures latency at true ends only.

The work is split in two: ``trace`` runs the VAD and the model over one clip
(the only slow part, ~30-60 ms per model call on 2 cores) and returns plain
numbers; everything after it is pure functions of those numbers, so each
parameter of the sweep costs no model call.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from voiceagent.audio.convert import resample, rms_db
from voiceagent.rules.endpointer import Endpointer, EndpointerSettings
from voiceagent.rules.noise_floor import NoiseFloor
from voiceagent.stages.protocols import EndOfTurnModel, SpeechDetector

logger = logging.getLogger(__name__)

RATE = 16000
"""Hertz the VAD is run at (the pipeline's VAD rate)."""
LATENCY_BUDGET_MS = 300.0
"""eot-bench's tight latency budget (the ``*_at_300ms`` figures)."""
CUTOFF_BUDGET = 0.05
"""eot-bench's cut-off budget (the ``*_at_5pct`` figures)."""
STEP_MS = 100
"""Smart Turn is asked every this many milliseconds of silence (eot-bench's grid)."""
FALLBACK_MS = 3000
"""Silence that ends the turn when Smart Turn never fires (pipecat's stop timeout)."""
SILENCE_MS: tuple[int, ...] = tuple(range(100, 3001, 20))
"""The silence-alone sweep: one frame apart, from eager to patient."""
THRESHOLDS: tuple[float, ...] = tuple(round(0.05 + 0.01 * i, 2) for i in range(91))
"""The Smart Turn sweep, 0.05..0.95."""
TAIL_MARGIN_MS = 1000
"""Silence padded after the longest wait swept, so webrtcvad's hangover cannot
leave the final silence too short for it."""


@dataclass(frozen=True)
class LabeledClip:
    """One recording of one turn, with its true speech start and end."""

    name: str
    audio: np.ndarray
    """Mono float32, with silence or room tone after ``end_s`` (padded if short)."""
    rate: int
    """Hertz of ``audio``."""
    start_s: float
    """Seconds from the start of ``audio`` to the first word."""
    end_s: float
    """Seconds from the start of ``audio`` to the end of the last word."""


class Pause(NamedTuple):
    """One silence after the onset, as the endpointer counted it."""

    start_s: float
    """End of the last voiced frame before it (seconds from the start of the clip)."""
    silence_ms: int
    """How long it lasted before speech resumed (or the audio ended)."""
    probabilities: tuple[float, ...]
    """The end-of-turn model at ``step``, ``2 step``, ... ms into it, up to its
    length and the fallback (empty when not asked)."""


class ClipTrace(NamedTuple):
    """What the models saw in one clip: all the sweep needs."""

    name: str
    end_s: float
    """The labelled end of speech."""
    audio_end_s: float
    """The end of the (padded) audio: a detector that never fired fired here at the earliest."""
    pauses: tuple[Pause, ...]


class Point(NamedTuple):
    """One parameter of a detector, scored over all clips."""

    param: float
    cutoff_rate: float
    mean_wait_ms: float | None
    """Over the clips not cut off; None when every clip was."""


# The model-running step ----------------------------------------------------


def trace(
    clip: LabeledClip,
    end_model: EndOfTurnModel | None,
    vad: SpeechDetector,
    frame_ms: int = 20,
    resume_ms: int = 60,
    start_ms: int = 60,
    end_margin_db: float = 0.0,
    onset_margin_s: float = 0.0,
    step_ms: int = STEP_MS,
    fallback_ms: int = FALLBACK_MS,
    tail_ms: int = max(SILENCE_MS[-1], FALLBACK_MS) + TAIL_MARGIN_MS,
) -> ClipTrace:
    """The clip's silences after the onset and, if ``end_model`` is given, its
    answers in each of them. ``vad`` must take ``frame_ms`` frames at 16 kHz.

    ``onset_margin_s`` lets the VAD open the utterance that long before the
    labelled start (earlier frames are taken as silence). ``end_margin_db`` > 0
    adds the pipeline's noise-floor correction (``vad.end_margin_db``,
    ``rules.noise_floor``), which cuts most of webrtcvad's hangover; 0 is
    webrtcvad alone.
    """
    audio = _padded(resample(clip.audio, clip.rate, RATE), clip.end_s, tail_ms)
    frame = RATE * frame_ms // 1000
    flags = _vad_flags(audio, vad, frame)
    voiced = _floor_corrected(audio, flags, frame, end_margin_db) if end_margin_db > 0 else flags
    # This measures ends of turns, not false starts: nothing before the labelled
    # onset (a click, or the voiced frames a fresh webrtcvad gives a file's first
    # 80 ms) may open the utterance and make the silence before the first word
    # a "pause" (Smart Turn calls 80 ms of noise a complete turn, p ~0.97).
    flags[: max(0, int((clip.start_s - onset_margin_s) * 1000) // frame_ms)] = False
    runs = silence_runs(flags, frame_ms, resume_ms, start_ms, voiced)
    model_audio = audio
    if end_model is not None and end_model.sample_rate != RATE:
        model_audio = resample(audio, RATE, end_model.sample_rate)
    pauses = tuple(
        Pause(start, ms, _ask(end_model, model_audio, start, ms, step_ms, fallback_ms))
        for start, ms in runs
    )
    _check_tail(clip.name, clip.end_s, pauses, tail_ms - TAIL_MARGIN_MS)
    return ClipTrace(clip.name, clip.end_s, audio.size / RATE, pauses)


def trace_all(
    clips: Iterable[LabeledClip],
    end_model: EndOfTurnModel | None,
    vad: SpeechDetector | Callable[[], SpeechDetector] | None = None,
    aggressiveness: int = 2,
    frame_ms: int = 20,
    **options: Any,
) -> list[ClipTrace]:
    """``trace`` for each clip. ``vad`` is a detector, or what makes one; by
    default a fresh webrtcvad like the pipeline's for every clip."""
    if vad is None:
        from voiceagent.stages.vad import WebRtcVad

        def vad() -> SpeechDetector:
            return WebRtcVad(aggressiveness=aggressiveness, sample_rate=RATE, frame_ms=frame_ms)

    traces = []
    for clip in clips:
        t0 = time.perf_counter()
        # webrtcvad adapts to what it has heard: one shared over unrelated
        # recordings made each one's pauses depend on the clip before it
        # (p_lecture_dublin's two labelled pauses shrank to one of 100 ms), hence one per clip.
        detector = vad if hasattr(vad, "is_speech") else vad()  # type: ignore[operator]
        traces.append(trace(clip, end_model, detector, frame_ms=frame_ms, **options))
        calls = sum(len(p.probabilities) for p in traces[-1].pauses)
        logger.info("%s: %d model calls in %.1f s", clip.name, calls, time.perf_counter() - t0)
    return traces


def _padded(audio: np.ndarray, end_s: float, tail_ms: int) -> np.ndarray:
    """``audio`` with zeros (digital silence) after it up to ``tail_ms`` past ``end_s``."""
    need = int(math.ceil((end_s + tail_ms / 1000) * RATE))
    if audio.size >= need:
        return audio
    return np.concatenate([audio, np.zeros(need - audio.size, np.float32)])


def _check_tail(name: str, end_s: float, pauses: Sequence[Pause], longest_ms: int) -> None:
    """Warn when the silence after the end is too short for the longest wait swept
    (speech-like noise in the tail): those waits then count at the audio's end."""
    after = [ms for start, ms, _ in pauses if start + ms / 1000 > end_s]
    if max(after, default=0) < longest_ms:
        logger.warning(
            "%s: the silence after the end lasts %d ms, under %d ms", name, max(after, default=0), longest_ms
        )


def _vad_flags(audio: np.ndarray, vad: SpeechDetector, frame: int) -> np.ndarray:
    n = audio.size // frame
    return np.array([vad.is_speech(audio[i * frame : (i + 1) * frame]) for i in range(n)], bool)


def _floor_corrected(audio: np.ndarray, flags: np.ndarray, frame: int, margin_db: float) -> np.ndarray:
    """The flags as ``dialogue.listening`` corrects them inside an utterance."""
    floor = NoiseFloor(margin_db)
    return np.array(
        [floor.is_voiced(bool(f), rms_db(audio[i * frame : (i + 1) * frame])) for i, f in enumerate(flags)],
        bool,
    )


def _ask(
    model: EndOfTurnModel | None,
    audio: np.ndarray,
    start_s: float,
    silence_ms: int,
    step_ms: int,
    fallback_ms: int,
) -> tuple[float, ...]:
    """The model's answers every ``step_ms`` into one silence, each on the audio up to then."""
    if model is None:
        return ()
    rate = model.sample_rate
    steps = min(silence_ms, fallback_ms) // step_ms  # later answers could never be used
    return tuple(
        model.probability(audio[: int(round((start_s + k * step_ms / 1000) * rate))])
        for k in range(1, steps + 1)
    )


# Pure functions ------------------------------------------------------------


def silence_runs(
    flags: Sequence[bool],
    frame_ms: int,
    resume_ms: int = 60,
    start_ms: int = 60,
    voiced: Sequence[bool] | None = None,
) -> list[tuple[float, int]]:
    """(start seconds, milliseconds) of each silence after the onset, as the
    pipeline's endpointer counts them: a voiced blip shorter than ``resume_ms``
    stays part of the silence, which runs from the end of the last voiced frame.

    ``voiced``, if given, replaces ``flags`` inside the utterance (the pipeline's
    noise-floor correction: onsets stay the VAD's alone).
    """
    never = 10**9  # the endpointer must not end the utterance: the detectors do
    ep = Endpointer(EndpointerSettings(frame_ms, start_ms, resume_ms, 0, never, never))
    inside = flags if voiced is None else voiced
    runs: list[tuple[float, int]] = []
    for flag, corrected in zip(flags, inside):
        ep.push(bool(corrected if ep.in_utterance else flag))
        if not ep.in_utterance or ep.silence_ms == 0:
            continue
        start = round((ep.last_voiced_index + 1) * frame_ms / 1000, 6)
        if runs and runs[-1][0] == start:
            runs[-1] = (start, ep.silence_ms)
        else:
            runs.append((start, ep.silence_ms))
    return runs


def silence_fire_s(pauses: Sequence[Pause], silence_ms: float) -> float | None:
    """When "the turn ends after ``silence_ms`` of silence" fires (None: never)."""
    for start_s, ms, _ in pauses:
        if ms >= silence_ms:
            return start_s + silence_ms / 1000
    return None


def smart_turn_fire_s(
    pauses: Sequence[Pause],
    threshold: float,
    step_ms: int = STEP_MS,
    fallback_ms: int = FALLBACK_MS,
) -> float | None:
    """When the model alone fires: its first answer at or above ``threshold``,
    else the fallback silence (None: never)."""
    for start_s, ms, probabilities in pauses:
        for k, p in enumerate(probabilities, 1):
            if p >= threshold:
                return start_s + k * step_ms / 1000
        if ms >= fallback_ms:
            return start_s + fallback_ms / 1000
    return None


def outcome(fire_s: float, end_s: float) -> tuple[bool, float | None]:
    """(cut off, wait in ms after the true end, None when cut off)."""
    if fire_s < end_s:
        return True, None
    return False, (fire_s - end_s) * 1000


def score(
    traces: Sequence[ClipTrace], fire: Callable[[Sequence[Pause]], float | None], param: float
) -> Point:
    """One parameter's cut-off rate and mean wait over all clips."""
    cut = 0
    waits: list[float] = []
    for t in traces:
        fire_s = fire(t.pauses)
        if fire_s is None:
            # The final silence ended before the wait did (noise in the tail,
            # warned about by ``trace``): the audio's end is a lower bound.
            fire_s = max(t.audio_end_s, t.end_s)
        is_cut, wait = outcome(fire_s, t.end_s)
        cut += is_cut
        if wait is not None:
            waits.append(wait)
    mean = sum(waits) / len(waits) if waits else None
    return Point(param, cut / len(traces) if traces else 0.0, mean)


def silence_curve(traces: Sequence[ClipTrace], params: Iterable[int] = SILENCE_MS) -> list[Point]:
    return [score(traces, lambda p, t=t: silence_fire_s(p, t), t) for t in params]


def smart_turn_curve(
    traces: Sequence[ClipTrace],
    thresholds: Iterable[float] = THRESHOLDS,
    step_ms: int = STEP_MS,
    fallback_ms: int = FALLBACK_MS,
) -> list[Point]:
    return [
        score(traces, lambda p, th=th: smart_turn_fire_s(p, th, step_ms, fallback_ms), th)
        for th in thresholds
    ]


_EPS = 1e-9  # rates and waits are sums of floats: 1/20 must meet a 5% budget


def best_at_latency(points: Iterable[Point], budget_ms: float = LATENCY_BUDGET_MS) -> Point | None:
    """The lowest cut-off rate among the points whose mean wait is within budget
    (ties: the faster one)."""
    ok = [p for p in points if p.mean_wait_ms is not None and p.mean_wait_ms <= budget_ms + _EPS]
    return min(ok, key=lambda p: (p.cutoff_rate, p.mean_wait_ms), default=None)


def best_at_cutoff(points: Iterable[Point], budget: float = CUTOFF_BUDGET) -> Point | None:
    """The lowest mean wait among the points that cut off at most ``budget``
    (ties: the one cutting off less)."""
    ok = [p for p in points if p.mean_wait_ms is not None and p.cutoff_rate <= budget + _EPS]
    return min(ok, key=lambda p: (p.mean_wait_ms, p.cutoff_rate), default=None)


def budget_figures(points: Sequence[Point]) -> dict[str, float | None]:
    """The two eot-bench figures of one detector's sweep, JSON-ready."""
    fast, safe = best_at_latency(points), best_at_cutoff(points)
    return {
        "cutoff_at_300ms": None if fast is None else round(fast.cutoff_rate, 4),
        "param_at_300ms": None if fast is None else fast.param,
        "mean_wait_ms_at_5pct": None if safe is None else round(float(safe.mean_wait_ms), 1),
        "param_at_5pct": None if safe is None else safe.param,
    }


def figures(
    traces: Sequence[ClipTrace], step_ms: int = STEP_MS, fallback_ms: int = FALLBACK_MS
) -> dict[str, object]:
    """Both detectors' figures from the traces (no model call)."""
    return {
        "silence": budget_figures(silence_curve(traces)),
        "smart_turn": budget_figures(smart_turn_curve(traces, step_ms=step_ms, fallback_ms=fallback_ms)),
        "clips": len(traces),
    }


def compare(
    clips: Iterable[LabeledClip],
    end_model: EndOfTurnModel,
    vad: SpeechDetector | Callable[[], SpeechDetector] | None = None,
    aggressiveness: int = 2,
    frame_ms: int = 20,
    end_margin_db: float = 0.0,
) -> dict[str, object]:
    """Silence alone and ``end_model`` alone on ``clips``, at eot-bench's two budgets
    (``trace_all`` for ``vad``, ``trace`` for ``end_margin_db``)."""
    traces = trace_all(
        clips, end_model, vad, aggressiveness=aggressiveness, frame_ms=frame_ms, end_margin_db=end_margin_db
    )
    return figures(traces)


# Markdown ------------------------------------------------------------------

MARKDOWN_HEADER = (
    "| detector | cut-off rate at 300 ms | mean wait at 5% cut-off |",
    "| --- | ---: | ---: |",
)


def markdown_row(detector: str, fig: Mapping[str, Any], param: str = "{:g}") -> str:
    """One table row from one detector's ``budget_figures``; ``param`` formats
    the chosen parameter (e.g. ``"T = {:g} ms"``). "–" where no parameter meets
    the budget, as in eot-bench's tables."""
    cut, wait = fig.get("cutoff_at_300ms"), fig.get("mean_wait_ms_at_5pct")
    fast = "–" if cut is None else f"{100 * cut:.1f}% ({param.format(fig['param_at_300ms'])})"
    safe = "–" if wait is None else f"{wait:.0f} ms ({param.format(fig['param_at_5pct'])})"
    return f"| {detector} | {fast} | {safe} |"


def markdown_rows(figs: Mapping[str, Any]) -> list[str]:
    """The header and a row per detector of ``compare``'s figures; append your own
    ``markdown_row`` for another policy."""
    return [
        *MARKDOWN_HEADER,
        markdown_row("silence alone", figs["silence"], "T = {:g} ms"),
        markdown_row("Smart Turn v3.2 alone", figs["smart_turn"], "p ≥ {:.2f}"),
    ]
