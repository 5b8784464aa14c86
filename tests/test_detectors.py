"""The offline end-of-turn comparison: the pure sweep over plain numbers, and the
model-running step on synthetic audio with a fake VAD and a fake model."""

from __future__ import annotations

import numpy as np
import pytest

from voiceagent.bench.detectors import (
    ClipTrace,
    LabeledClip,
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
    silence_runs,
    smart_turn_curve,
    smart_turn_fire_s,
    trace,
    trace_all,
)

T, F = True, False


# silence_runs: the endpointer's view of the VAD flags


def test_silence_runs_start_after_the_onset_and_end_when_speech_resumes():
    flags = [F, F, T, T, T, T, F, F, F, T, T, T, F, F]
    # onset at frame 2; last voiced frame 5 -> silence from 0.12 s, the 2-frame
    # voiced run at 9-10 still counts as silence until the 3rd frame resumes speech
    assert silence_runs(flags, 20, resume_ms=60, start_ms=60) == [(0.12, 100), (0.24, 40)]


def test_a_short_blip_stays_part_of_the_silence():
    assert silence_runs([T, T, T, F, F, T, F, F], 20) == [(0.06, 100)]


def test_corrected_flags_count_inside_the_utterance_only():
    flags, voiced = [T, T, T, T, T, F], [F, F, F, T, F, F]
    assert silence_runs(flags, 20) == [(0.1, 20)]
    assert silence_runs(flags, 20, voiced=voiced) == [(0.08, 40)]  # the onset is still the VAD's


def test_silence_before_the_onset_is_not_a_pause():
    assert silence_runs([F] * 10 + [T] * 3, 20) == []
    assert silence_runs([T, F, F, T, F], 20) == []  # too few voiced frames to open


# when each detector fires


PAUSES = [Pause(1.0, 200, (0.2, 0.6)), Pause(2.0, 3200, tuple([0.3] * 5 + [0.8] * 25))]


@pytest.mark.parametrize("ms, fire", [(100, 1.1), (200, 1.2), (300, 2.3), (3200, 5.2), (3220, None)])
def test_silence_fires_in_the_first_silence_long_enough(ms, fire):
    assert silence_fire_s(PAUSES, ms) == (None if fire is None else pytest.approx(fire))


@pytest.mark.parametrize("threshold, fire", [(0.1, 1.1), (0.5, 1.2), (0.7, 2.6), (0.9, 5.0)])
def test_smart_turn_fires_on_its_first_confident_answer_or_the_fallback(threshold, fire):
    assert smart_turn_fire_s(PAUSES, threshold, step_ms=100, fallback_ms=3000) == pytest.approx(fire)


def test_smart_turn_never_fires_without_a_confident_answer_or_a_long_silence():
    assert smart_turn_fire_s([Pause(1.0, 400, (0.1, 0.1, 0.1, 0.1))], 0.5) is None


def test_plain_tuples_are_pauses():
    assert smart_turn_fire_s([(1.0, 300, (0.1, 0.9))], 0.5) == pytest.approx(1.2)
    assert silence_fire_s([(1.0, 300, ())], 300) == pytest.approx(1.3)


def test_outcome_is_a_cut_off_before_the_true_end_and_a_wait_after_it():
    assert outcome(1.9, 2.0) == (True, None)
    cut, wait = outcome(2.25, 2.0)
    assert not cut and wait == pytest.approx(250)
    assert outcome(2.0, 2.0) == (False, 0.0)


# scoring a sweep


def _traces():
    # one turn with a 300 ms pause inside it (end 2.5 s), one without (end 1.0 s)
    paused = ClipTrace("paused", 2.5, 6.0, (Pause(1.0, 300, (0.9, 0.2, 0.1)), Pause(2.6, 3400, (0.4, 0.9))))
    plain = ClipTrace("plain", 1.0, 5.0, (Pause(1.1, 3900, (0.95,) + (0.99,) * 29),))
    return [paused, plain]


def test_score_counts_cut_offs_and_averages_waits_of_the_others():
    traces = _traces()
    short = score(traces, lambda p: silence_fire_s(p, 200), 200)
    assert short.cutoff_rate == 0.5 and short.mean_wait_ms == pytest.approx(300)  # plain: 1.3 - 1.0
    long = score(traces, lambda p: silence_fire_s(p, 400), 400)
    assert long.cutoff_rate == 0.0 and long.mean_wait_ms == pytest.approx((500 + 500) / 2)


def test_a_detector_that_never_fires_counts_at_the_audio_end():
    p = score([ClipTrace("c", 1.0, 4.0, (Pause(1.1, 500, ()),))], lambda p: silence_fire_s(p, 900), 900)
    assert p == Point(900, 0.0, pytest.approx(3000))


def test_every_clip_cut_off_has_no_mean_wait():
    assert score(_traces()[:1], lambda p: 1.0, 0).mean_wait_ms is None


def test_curves_sweep_their_parameter():
    traces = _traces()
    assert [p.param for p in silence_curve(traces, [200, 400])] == [200, 400]
    st = smart_turn_curve(traces, [0.5, 0.95])
    assert st[0] == Point(0.5, 0.5, pytest.approx(200))  # paused cut at 1.1; plain waits 1.0 -> 1.2
    # 0.95: paused never confident -> fallback 2.6 + 3.0; plain fires at 1.2
    assert st[1] == Point(0.95, 0.0, pytest.approx((3100 + 200) / 2))


POINTS = [Point(100, 0.40, 150.0), Point(200, 0.10, 280.0), Point(300, 0.10, 300.0),
          Point(400, 0.05, 420.0), Point(500, 0.0, 600.0), Point(600, 0.0, None)]


def test_best_at_latency_is_the_fewest_cut_offs_within_the_wait_budget():
    assert best_at_latency(POINTS, 300) == Point(200, 0.10, 280.0)  # tie on rate: the faster
    assert best_at_latency(POINTS, 100) is None


def test_best_at_cutoff_is_the_shortest_wait_within_the_cut_off_budget():
    assert best_at_cutoff(POINTS, 0.05) == Point(400, 0.05, 420.0)
    assert best_at_cutoff(POINTS, 0.0) == Point(500, 0.0, 600.0)
    assert best_at_cutoff([Point(1, 0.2, 10.0)], 0.05) is None


def test_exactly_one_in_twenty_meets_a_five_percent_budget():
    assert best_at_cutoff([Point(1, 1 / 20, 10.0)], 0.05) is not None


def test_budget_figures_and_markdown():
    fig = budget_figures(POINTS)
    assert fig == {"cutoff_at_300ms": 0.1, "param_at_300ms": 200,
                   "mean_wait_ms_at_5pct": 420.0, "param_at_5pct": 400}
    assert markdown_row("x", fig, "T = {:g} ms") == "| x | 10.0% (T = 200 ms) | 420 ms (T = 400 ms) |"
    none = budget_figures([Point(1, 0.5, 900.0)])
    assert markdown_row("y", none) == "| y | – | – |"


def test_figures_are_json_ready_and_render_as_a_table():
    import json

    figs = figures(_traces())
    assert figs["clips"] == 2 and set(figs) == {"silence", "smart_turn", "clips"}
    assert figs == json.loads(json.dumps(figs))
    rows = markdown_rows(figs)
    assert rows[0] == "| detector | cut-off rate at 300 ms | mean wait at 5% cut-off |"
    assert rows[2].startswith("| silence alone |") and rows[3].startswith("| Smart Turn v3.2 alone |")
    assert len(rows) == 4


# the model-running step, with fakes


class LoudVad:
    """Speech is anything above a tenth of full scale."""

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(np.abs(frame).max() > 0.1)


class CountingModel:
    sample_rate = 16000

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def probability(self, audio: np.ndarray) -> float:
        self.lengths.append(audio.size)
        return 0.5


def _clip(rate: int = 16000) -> LabeledClip:
    t = np.arange(int(1.5 * rate)) / rate
    audio = np.where((t >= 0.5) & (t < 1.0), 0.5 * np.sin(2 * np.pi * 200 * t), 0.0).astype(np.float32)
    return LabeledClip("tone", audio, rate, 0.5, 1.0)


def test_trace_asks_the_model_every_step_on_the_audio_so_far_up_to_the_fallback():
    model = CountingModel()
    tr = trace(_clip(), model, LoudVad(), step_ms=100, fallback_ms=1000, tail_ms=1500)
    assert tr.end_s == 1.0 and tr.audio_end_s == pytest.approx(2.5)  # padded past the 1.5 s file
    (pause,) = tr.pauses
    assert pause.start_s == pytest.approx(1.0) and pause.silence_ms == 1500
    assert pause.probabilities == (0.5,) * 10  # capped at the fallback
    assert model.lengths == [int(round((1.0 + k / 10) * 16000)) for k in range(1, 11)]


def test_trace_resamples_and_works_without_a_model():
    tr = trace(_clip(8000), None, LoudVad(), tail_ms=500)
    assert [(round(p.start_s, 2), p.silence_ms, p.probabilities) for p in tr.pauses] == [(1.0, 500, ())]


def test_noise_before_the_labelled_onset_does_not_open_the_turn():
    clip = _clip()
    audio = clip.audio.copy()
    audio[1600:3200] = 0.5  # 100 ms of "click" at 0.1-0.2 s, well before the 0.5 s onset
    tr = trace(LabeledClip("click", audio, 16000, 0.5, 1.0), None, LoudVad(), tail_ms=500)
    assert [round(p.start_s, 2) for p in tr.pauses] == [1.0]


class HangoverVad:
    """Like webrtcvad: speech is above a tenth of full scale, and stays speech
    for 5 more frames (100 ms); stateful, as webrtcvad is."""

    def __init__(self) -> None:
        self.hang = 0
        self.frames = 0

    def is_speech(self, frame: np.ndarray) -> bool:
        self.frames += 1
        self.hang = 6 if np.abs(frame).max() > 0.1 else max(0, self.hang - 1)
        return self.hang > 0 or np.abs(frame).max() > 0.1


def _noisy_clip() -> LabeledClip:
    clip = _clip()
    noise = 0.001 * np.random.default_rng(0).standard_normal(clip.audio.size).astype(np.float32)
    return LabeledClip("noisy", clip.audio + noise, clip.rate, clip.start_s, clip.end_s)


def test_the_noise_floor_correction_cuts_the_vad_hangover():
    raw = trace(_noisy_clip(), None, HangoverVad(), tail_ms=500)
    cut = trace(_noisy_clip(), None, HangoverVad(), tail_ms=500, end_margin_db=6.0)
    assert [round(p.start_s, 2) for p in raw.pauses] == [1.1]
    assert [round(p.start_s, 2) for p in cut.pauses] == [1.0]


def test_trace_all_makes_a_vad_per_clip_or_shares_the_one_given():
    made: list[HangoverVad] = []

    def factory() -> HangoverVad:
        made.append(HangoverVad())
        return made[-1]

    traces = trace_all([_clip(), _clip()], CountingModel(), factory, tail_ms=500)
    assert len(made) == 2 and [len(t.pauses) for t in traces] == [1, 1]
    shared = HangoverVad()
    trace_all([_clip(), _clip()], None, shared, tail_ms=500)
    assert shared.frames == 2 * 75
