"""``voiceagent bench``: the pure measurements on hand-made timelines and events,
the espeak corpus, and one run of the whole command with the real models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.support.speech import require_espeak, require_models
from voiceagent.bench.baseline import BaselineTurn, endpoint_segments
from voiceagent.bench.bargein import BargeInTimeline, measure_interruptions
from voiceagent.bench.corpus import (
    SENTENCES,
    Corpus,
    Utterance,
    build_corpus,
    espeak_ssml,
    speech_bounds,
    to_ssml,
)
from voiceagent.bench.measure import (
    FalseAlarms,
    false_barge_ins,
    measure_output,
    measure_utterances,
    premature_rates,
    quiet_after,
    sound_onset,
)
from voiceagent.bench.report import BenchResults, markdown, summarize
from voiceagent.bench.stats import Dist
from voiceagent.bench.wer import normalize, wer, word_errors
from voiceagent.errors import VoiceAgentError

RATE = 16000


def s(seconds: float) -> int:
    return int(round(seconds * RATE))


def utterance(i: int, start: float, end: float, pauses=(), text="what is the time") -> Utterance:
    return Utterance(
        i, text, "en-us", 160, -6.0, 500 if pauses else 0, s(start), s(end),
        tuple((s(a), s(b)) for a, b in pauses),
    )


def corpus(*utts: Utterance, seconds: float = 30.0) -> Corpus:
    return Corpus(RATE, 0, 8.0, -45.0, utts, np.zeros(s(seconds), np.float32))


def ev(t: float, type_: str, turn: int, **extra) -> dict:
    return {"t": t, "type": type_, "turn": turn, **extra}


def answered_turn(turn: int, start: float, end: float, play: float, text: str) -> list[dict]:
    """Events of a turn answered normally, speculative ASR before the endpoint."""
    return [
        ev(start, "speech_start", turn), ev(end, "speech_end", turn),
        ev(end + 0.75, "end_of_turn", turn), ev(end + 0.3, "asr_final", turn, text=text),
        ev(end + 0.35, "llm_first_token", turn, text="It"),
        ev(end + 0.5, "llm_first_clause", turn, text="It is noon,"),
        ev(end + 0.6, "tts_first_audio", turn), ev(play, "playback_start", turn),
        ev(play + 2.0, "playback_end", turn, played_s=2.0),
        ev(play + 2.0, "turn_end", turn, text=text, reply="It is noon.", reason="answered"),
    ]


# -- WER and percentiles --------------------------------------------------------


def test_wer_normalizes_case_and_punctuation():
    assert normalize("What's the Time, please?") == ["whats", "the", "time", "please"]
    assert wer("What is the time?", "what is the time") == 0.0
    assert word_errors("a b c d", "a x c") == 2  # one substitution, one deletion
    assert word_errors("a b", "a b c d") == 2  # two insertions
    assert wer("one two three four", "") == 1.0
    assert wer("", "anything") == 1.0  # no reference words: errors over max(0, 1)


def test_dist_is_linear_percentiles_without_missing_values():
    d = Dist.of([100, 200, None, 300, math.inf, 400])
    assert d.n == 4 and d.p50 == 250 and d.p95 == pytest.approx(385)
    assert Dist.of([None]).to_dict() == {"p50": None, "p95": None, "n": 0}
    assert Dist.of([700]).p95 == 700  # a single value is every percentile


# -- per-utterance measurements -------------------------------------------------


def test_v2v_is_read_off_the_aligned_output_from_the_true_end():
    c = corpus(utterance(0, 1.0, 3.0), utterance(1, 12.0, 14.0))
    out = np.zeros(s(30), np.float32)
    out[s(3.42) : s(6.0)] = 0.3  # reply to the first, 420 ms after its end
    out[s(3.0) - 100 : s(3.0) - 50] = 0.005  # below the threshold: not a reply
    out[s(14.8) : s(20)] = 0.3
    events = answered_turn(1, 1.05, 2.98, 3.42, "what is the time") + answered_turn(
        2, 12.0, 13.98, 14.8, "what is the"
    )
    r0, r1 = measure_utterances(c, events, out)
    assert r0.v2v_ms == pytest.approx(420, abs=0.1) and r1.v2v_ms == pytest.approx(800, abs=0.1)
    assert r0.reply_turn == 1 and r0.turns == (1,)
    assert r0.endpoint_ms == pytest.approx(730) and r0.asr_final_ms == pytest.approx(280)
    assert r0.playback_ms == pytest.approx(420)
    assert not r0.premature and not r0.playing_at_end and not r0.overlaps_next
    assert r0.wer == 0 and r1.word_errors == 1 and r1.ref_words == 4


def test_unanswered_and_overlapping_replies_are_flagged():
    c = corpus(utterance(0, 1.0, 3.0), utterance(1, 9.0, 11.0))
    out = np.zeros(s(30), np.float32)
    out[s(4.0) : s(9.5)] = 0.3  # the first reply runs into the second question
    r0, r1 = measure_utterances(c, answered_turn(1, 1.0, 3.0, 4.0, "what is the time"), out)
    assert r0.overlaps_next and r0.outcomes == ("1 answered",) and r0.reply == "It is noon."
    assert r1.playing_at_end is False and r1.v2v_ms is None and not r1.answered
    assert r1.transcript == "" and r1.wer == 1.0


def test_speech_cut_in_its_pause_is_premature():
    pause = (2.0, 2.5)
    c = corpus(utterance(0, 1.0, 3.5, [pause]), utterance(1, 12.0, 14.0, [(13.0, 13.4)]))
    out = np.zeros(s(30), np.float32)
    # Utterance 0: the endpointer fired in the pause and the first half was answered;
    # the rest became a turn of its own.
    events = [
        ev(1.0, "speech_start", 1), ev(2.0, "speech_end", 1), ev(2.45, "end_of_turn", 1),
        ev(2.2, "asr_final", 1, text="what is"), ev(2.5, "speech_start", 2),
        ev(2.48, "playback_start", 1), ev(2.6, "barge_in", 1, by_turn=2, played_s=0.1, heard=""),
        ev(3.5, "speech_end", 2), ev(3.8, "asr_final", 2, text="the time"),
        ev(4.25, "end_of_turn", 2), ev(4.3, "playback_start", 2),
    ]
    events += answered_turn(3, 12.0, 14.0, 14.5, "what is the time")
    r0, r1 = measure_utterances(c, events, out)
    assert r0.premature and r0.turns == (1, 2) and r0.reply_turn == 2
    assert r0.transcript == "what is the time" and r0.wer == 0
    assert r0.endpoint_ms == pytest.approx(750)
    assert not r1.premature
    assert premature_rates([r0, r1]) == (0.5, 0.5)
    # the barge-in on the reply started in the pause is real: the user went on speaking
    alarms = false_barge_ins(events, [(1.0, 3.5), (12.0, 14.0)])
    assert alarms.barge_ins == 0


def test_talking_over_splits_and_continued_turns_are_counted():
    c = corpus(utterance(0, 1.0, 3.5, [(2.0, 2.8)]), utterance(1, 12.0, 14.0, [(13.0, 13.4)]))
    out = np.zeros(s(30), np.float32)
    out[s(2.5) : s(2.75)] = 0.3  # 0.25 s of a reply heard in the first one's pause
    out[s(4.0) : s(6.0)] = 0.3
    events = [
        # utterance 0: a turn ended in the pause, its reply withdrawn when the user went on
        ev(1.0, "speech_start", 1), ev(2.0, "speech_end", 1), ev(2.3, "end_of_turn", 1),
        ev(2.2, "asr_final", 1, text="what is"), ev(2.5, "playback_start", 1),
        ev(2.8, "speech_start", 2), ev(2.9, "continuation", 2, of_turn=1, verdict="continuation",
                                          words="the time", gap_s=0.8),
        ev(2.9, "turn_end", 1, text="what is", reply="", reason="continued"),
        ev(3.5, "speech_end", 2), ev(3.7, "asr_final", 2, text="what is the time"),
        ev(3.8, "end_of_turn", 2), ev(4.0, "playback_start", 2),
        ev(6.0, "turn_end", 2, text="what is the time", reply="It is noon.", reason="answered"),
        # utterance 1: answered twice, once per part
        *answered_turn(3, 12.0, 13.0, 13.2, "what is"), *answered_turn(4, 13.4, 14.0, 14.5, "the time"),
    ]
    r0, r1 = measure_utterances(c, events, out)
    assert r0.talked_over_s == pytest.approx(0.25)
    assert r0.answered_turns == 1 and not r0.split
    assert r0.transcript == "what is the time" and r0.wer == 0  # the continued turn's words are not counted twice
    assert r1.answered_turns == 2 and r1.split


def test_false_barge_in_is_one_on_a_reply_nobody_talked_over():
    events = [
        ev(4.0, "playback_start", 1), ev(5.0, "barge_in", 1, by_turn=2, played_s=1.0, heard=""),
        ev(5.1, "playback_end", 1, played_s=1.1), ev(20.0, "playback_start", 3),
        ev(23.0, "playback_end", 3, played_s=3.0),
    ]
    alarms = false_barge_ins(events, [(1.0, 3.0), (16.0, 18.0)])
    assert alarms == FalseAlarms(1, pytest.approx(4.1))
    # A reply held back (never played) and cut by the user going on is no false alarm.
    held = [ev(2.6, "speech_start", 5), ev(3.2, "barge_in", 4, by_turn=5, played_s=0.0, heard="")]
    assert false_barge_ins(held, [(1.0, 3.0)]).barge_ins == 0


def test_peer_output_alone_gives_v2v_and_premature_replies():
    c = corpus(utterance(0, 1.0, 3.5, [(2.0, 2.5)]), utterance(1, 12.0, 14.0))
    out = np.zeros(s(30), np.float32)
    out[s(2.3) : s(2.4)] = 0.2  # spoke up in the pause
    out[s(4.0) : s(6.0)] = 0.2
    out[s(14.6) : s(16.0)] = 0.2
    out[s(11.0) : s(12.3)] = 0.2  # a reply that runs on into the next question is no onset
    r0, r1 = measure_output(c, out)
    assert r0.premature and r0.v2v_ms == pytest.approx(500, abs=0.1)
    assert not r1.premature and r1.v2v_ms == pytest.approx(600, abs=0.1)
    assert sound_onset(out, s(2.0), s(3.0), RATE) == s(2.3)


def test_barge_in_stop_latency_from_the_onset_to_200ms_of_silence():
    out = np.zeros(s(20), np.float32)
    out[s(3.0) : s(5.13)] = 0.3  # the reply, stopped 130 ms after the onset at 5.0 s
    out[s(13.5) : s(14.4)] = 0.3  # a reply paused at 14.4 s, resumed while the user still spoke
    out[s(14.7) : s(15.5)] = 0.3
    assert quiet_after(out, 5.0, RATE) == pytest.approx(0.13, abs=0.011)
    timeline = BargeInTimeline(
        RATE, np.zeros(s(20), np.float32), ((s(1.0), s(2.0)), (s(12.0), s(13.0))),
        ((s(5.0), s(6.0)), (s(14.0), s(15.0))), (("q", "i"), ("q", "i")),
    )
    events = [ev(5.3, "barge_in", 1, by_turn=2, played_s=2.0, heard="")]
    first, second = measure_interruptions(timeline, events, out)
    assert first.reply_playing and first.barge_in and first.stop_ms == pytest.approx(130, abs=11)
    assert not first.resumed
    assert second.reply_playing and second.resumed and not second.barge_in
    assert second.stop_ms == pytest.approx(400, abs=11)


def test_baseline_endpointer_needs_the_whole_trailing_silence():
    flags = [False] * 5 + [True] * 10 + [False] * 3 + [True] * 5 + [False] * 40
    (seg,) = endpoint_segments(flags, start_frames=3, silence_frames=40)  # the gap of 3 is kept
    assert seg.onset == 5 and seg.fire == 22 + 40
    assert endpoint_segments([True, False, True, False], 2, 5) == []  # never 2 in a row
    assert endpoint_segments([True] * 4, 2, 5)[0].fire == 3  # still open at the end


# -- the report -------------------------------------------------------------------


def _results(tmp_corpus: Corpus) -> BenchResults:
    out = np.zeros(tmp_corpus.audio.size, np.float32)
    out[s(3.5) : s(5.0)] = 0.2
    events = answered_turn(1, 1.0, 3.0, 3.5, "what is the time")
    utts = measure_utterances(tmp_corpus, events, out)
    baseline = [
        BaselineTurn(0, 850.0, 300.0, 900.0, 400.0, "what is the time", "It is noon.", False, 0, 4),
        BaselineTurn(1, None, ref_words=4),
    ]
    return BenchResults(
        tmp_corpus, utts, 30.0, 12.0, 650.0, baseline, FalseAlarms(0, 2.0), 0.0,
    )


REQUIRED_KEYS = {
    "v2v_ms", "baseline_v2v_ms", "endpoint_ms", "asr_final_ms", "llm_first_token_ms",
    "first_clause_ms", "tts_first_audio_ms", "premature_eot_rate", "premature_eot_rate_all",
    "wer", "cpu_percent", "peak_rss_mb", "speedup_p50", "barge_in_stop_ms",
    "false_barge_ins_per_min", "turns", "machine", "per_turn",
}


def test_figures_have_every_key_and_render(tmp_path):
    c = corpus(utterance(0, 1.0, 3.0), utterance(1, 12.0, 14.0, [(13.0, 13.4)]))
    machine = {"cpu": "test cpu", "cores": 2, "gpu": "none"}
    figures = summarize(_results(c), machine)
    assert REQUIRED_KEYS <= figures.keys()
    assert figures["v2v_ms"] == {"p50": 500.0, "p95": 500.0, "n": 1}
    assert figures["speedup_p50"] == pytest.approx(2450 / 500, abs=0.01)
    assert figures["cpu_percent"] == 40.0 and figures["turns"] == 2
    assert figures["premature_eot_rate"] == 0.0 and figures["answered"] == 1
    assert figures["barge_in_stop_ms"]["n"] == 0 and figures["false_barge_ins_per_min"] == 0.0
    json.dumps(figures, allow_nan=False)  # valid JSON: no NaN or infinity
    text = markdown(figures)
    assert "| voice-to-voice p50 ≤ 500 ms | 500 ms | pass |" in text
    assert "| voice-to-voice p95 ≤ 800 ms | 500 ms | pass |" in text
    assert "unanswered" in text

    from voiceagent.bench.command import write_outputs

    write_outputs(figures, text, tmp_path / "out" / "r.json")
    assert json.loads((tmp_path / "out" / "r.json").read_text())["turns"] == 2
    assert (tmp_path / "out" / "r.md").read_text() == text
    assert (tmp_path / "out" / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_peer_is_a_clear_error():
    from voiceagent.bench.command import load_peer

    with pytest.raises(VoiceAgentError, match="unknown peer"):
        load_peer("nope")


def test_bench_command_line_checks_its_numbers(capsys):
    from voiceagent.cli import main

    for bad in (["bench"], ["bench", "--turns", "0"], ["bench", "--turns", "2", "--gap-s", "0"],
                ["bench", "--turns", "2", "--barge-in-turns", "-1"]):
        with pytest.raises(SystemExit) as exit_:
            main(bad)
        assert exit_.value.code == 2


# -- the corpus, with espeak-ng ---------------------------------------------------


def test_sentences_have_a_boundary_and_no_digits():
    assert len(SENTENCES) >= 40
    for sentence in SENTENCES:
        assert sentence.count("|") == 1, sentence
        assert not any(ch.isdigit() for ch in sentence), sentence


def test_corpus_is_reproducible_and_its_pauses_are_where_the_breaks_were():
    require_espeak()
    a = build_corpus(5, seed=3, gap_s=2.0)
    b = build_corpus(5, seed=3, gap_s=2.0)
    assert a.utterances == b.utterances and a.noise_dbfs == b.noise_dbfs
    differ = np.flatnonzero(a.audio != b.audio)
    assert differ.size == 0, (  # where: in which utterance, or only in the noise?
        f"{differ.size} samples differ, from {differ[0] / RATE:.3f} s to {differ[-1] / RATE:.3f} s; "
        f"utterances at {[(u.start / RATE, u.end / RATE) for u in a.utterances]}"
    )
    assert not np.array_equal(a.audio[: s(20)], build_corpus(5, seed=4, gap_s=2.0).audio[: s(20)])
    assert sum(u.break_ms > 0 for u in a.utterances) == 2  # 40% of 5
    previous_end = -s(2.0)
    for u in a.utterances:
        assert 1.0 <= (u.end - u.start) / RATE <= 5.0
        assert u.start > previous_end + s(2.0)  # the gap, then the next question
        previous_end = u.end
        # the speech itself is well above the noise floor at its true bounds
        assert np.abs(a.audio[u.start : u.start + s(0.05)]).max() > 0.005
        if not u.break_ms:
            assert u.pauses == ()
            continue
        (pause,) = u.pauses
        length_ms = (pause[1] - pause[0]) / RATE * 1000
        assert abs(length_ms - u.break_ms) < 150, (u, length_ms)
        # The first phrase alone ends where the pause begins.
        sentence = next(x for x in SENTENCES if to_ssml(x, 0)[0] == u.text)
        first = sentence.split("|")[0].strip()
        alone = espeak_ssml(f"<speak>{first}</speak>", RATE, u.voice, u.wpm)
        start, end, _ = speech_bounds(alone, RATE)
        assert abs((pause[0] - u.start) - (end - start)) < s(0.15), u


def test_the_corpus_is_the_same_on_a_fresh_machine(tmp_path):
    # On a fresh machine (a home directory without PulseAudio's client files)
    # espeak-ng's first call gave different audio for the voice variants: the
    # corpus of the first run of all differed from every later one's.
    import os
    import subprocess
    import sys

    from tests.support.speech import ROOT

    require_espeak()
    code = (
        "import hashlib; from voiceagent.bench.corpus import build_corpus\n"
        "c = build_corpus(2, seed=6, gap_s=0.5)\n"
        "print(sorted({u.voice for u in c.utterances}), hashlib.sha256(c.audio.tobytes()).hexdigest())\n"
    )
    runs = []
    for i in range(2):
        home = tmp_path / f"home{i}"
        home.mkdir()
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "HOME": str(home)}, check=True)
        runs.append(out.stdout.strip())
    assert runs[0] == runs[1], runs
    assert "+f2" in runs[0], runs  # a voice variant with breath noise is among them


# -- the whole command with the real models ----------------------------------------


@pytest.mark.realmodel
def test_bench_command_writes_figures_summary_and_plot(tmp_path):
    require_models()
    require_espeak()
    from tests.support.cli import voiceagent

    path = tmp_path / "x.json"
    proc = voiceagent("bench", "--turns", "2", "--barge-in-turns", "1", "--gap-s", "6",
                      "--json", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    figures = json.loads(path.read_text())
    assert REQUIRED_KEYS <= figures.keys()
    assert figures["turns"] == 2 and len(figures["per_turn"]) == 2
    for key in ("v2v_ms", "baseline_v2v_ms"):
        assert all(math.isfinite(figures[key][p]) for p in ("p50", "p95")), figures[key]
    assert "# voiceagent bench" in proc.stdout.decode()
    assert path.with_suffix(".md").read_text().startswith("# voiceagent bench")
    assert path.with_suffix(".png").stat().st_size > 10_000
