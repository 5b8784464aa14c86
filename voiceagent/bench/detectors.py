"""End-of-turn detectors compared offline on labelled recordings, as LiveKit's eot-bench does.

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

The work is split in two: ``trace`` (here) runs the VAD and the model over one
clip (the only slow part, ~30-60 ms per model call on 2 cores) and returns
plain numbers; everything after it, the sweep of each detector's parameter and
eot-bench's two budget figures (the cut-off rate at 300 ms, the mean wait at 5%
cut-off), is pure functions of those numbers in ``bench.detector_sweep``, so
each parameter of the sweep costs no model call. ``compare`` does both.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from voiceagent.audio.convert import resample, rms_db
# The sweep's names are re-exported: the tests (and older callers) import them from here.
from voiceagent.bench.detector_sweep import (  # noqa: F401
    CUTOFF_BUDGET,
    FALLBACK_MS,
    LATENCY_BUDGET_MS,
    MARKDOWN_HEADER,
    SILENCE_MS,
    STEP_MS,
    THRESHOLDS,
    ClipTrace,
    Pause,
    Point,
    best_at_cutoff,
    best_at_latency,
    budget_figures,
    figures,
    markdown_row,
    markdown_rows,
    outcome,
    score,
    silence_curve,
    silence_fire_s,
    smart_turn_curve,
    smart_turn_fire_s,
)
from voiceagent.rules.endpointer import Endpointer, EndpointerSettings
from voiceagent.rules.noise_floor import NoiseFloor
from voiceagent.stages.protocols import EndOfTurnModel, SpeechDetector

logger = logging.getLogger(__name__)

RATE = 16000
"""Hertz the VAD is run at (the pipeline's VAD rate)."""
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


# The endpointer's silences ------------------------------------------------


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

