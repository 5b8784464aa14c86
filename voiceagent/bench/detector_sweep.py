"""The end-of-turn sweep: scoring detectors from their traces, with no model call.

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

A turn is cut off when its detector fires before the labelled end of speech.
Its wait is the time from that labelled end to the firing, so it includes the
VAD's own delay; a turn that was cut off has no wait (its cost is counted in
the other figure), as eot-bench measures latency at true ends only.

Everything here is a pure function of the plain numbers that
``bench.detectors.trace`` gets from the models (``ClipTrace``), so each
parameter of the sweep costs no model call; the tables' Markdown is at the end.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

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


# Firing and scoring --------------------------------------------------------


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
