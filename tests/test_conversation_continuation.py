"""Going on after a pause that ended the turn (``rules.continuation``), with fake
models on a manual clock. The real-speech sibling is in test_realmodel_duplex.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.conversation import LONG_REPLY, converse, first, types
from tests.support.fakes import FakeChat, FakeTranscriber, silence, tone
from voiceagent.config import TurnConfig
from voiceagent.rules.bargein import words_of
from voiceagent.rules.continuation import ContinuationSettings, Verdict, added_words, judge, may_continue
from voiceagent.stages.protocols import Transcript

RATE = 16000


def paused(at: float, more_s: float = 0.5) -> np.ndarray:
    """1 s of speech at 0.3 s (its turn ends at 1.7 s, the reply plays from
    1.72 s), then ``more_s`` more from ``at``."""
    return np.concatenate([silence(0.3), tone(1.0), silence(at - 1.3), tone(more_s), silence(4.0)])


class Saying(FakeTranscriber):
    """The first second is "speech 10"; anything longer adds ``more``."""

    def __init__(self, more: str) -> None:
        super().__init__()
        self.more = more

    def transcribe(self, audio: np.ndarray) -> Transcript:
        heard = super().transcribe(audio)
        if heard.text and int(heard.text.split()[1]) > 10:
            return Transcript(f"speech 10, {self.more}", 0.0)
        return heard


def test_going_on_as_the_reply_starts_is_one_turn_and_the_reply_leaves_no_trace():
    events, out, conv = converse(paused(at=1.74), chat=FakeChat(LONG_REPLY))
    assert first(events, "end_of_turn", 1).t == pytest.approx(1.7)  # the turn had ended
    judged = first(events, "continuation", 2)
    assert judged.of_turn == 1 and judged.verdict == "continuation" and judged.words == "15"
    assert judged.gap_s == pytest.approx(0.44)
    assert first(events, "turn_end", 1).reason == "continued"
    # Quiet at the output block after the voice's first frame (1.74 s).
    assert first(events, "playback_end", 1).t == pytest.approx(1.785)
    assert first(events, "asr_final", 2).text == "speech 15"  # both parts, one transcript
    assert first(events, "turn_end", 2).reason == "answered"
    assert [(x.turn, x.user) for x in conv.history.exchanges] == [(2, "speech 15")]


def test_going_on_while_the_reply_starts_stops_it_at_once():
    events, out, conv = converse(paused(at=1.9), chat=FakeChat(LONG_REPLY))
    assert first(events, "playback_start", 1).t == pytest.approx(1.72)
    # Held at the output block after the voice's first frame (1.90 s), as a barge-in.
    assert first(events, "playback_end", 1).t == pytest.approx(1.945)
    assert first(events, "turn_end", 1).reason == "continued"
    assert first(events, "continuation", 2).verdict == "continuation"
    assert "barge_in" not in types(events)
    assert not np.abs(out[int(2.0 * RATE) : int(first(events, "playback_start", 2).t * RATE)]).max() > 1e-3
    assert [(x.turn, x.user) for x in conv.history.exchanges] == [(2, "speech 15")]


def test_wait_stop_soon_after_the_turn_interrupts_the_reply():
    events, _, conv = converse(paused(at=1.9), chat=FakeChat(LONG_REPLY), transcriber=Saying("wait, stop."))
    judged = first(events, "continuation", 2)
    assert judged.verdict == "interruption" and judged.words == "wait stop"
    assert first(events, "turn_end", 1).reason == "interrupted"
    # The history keeps the first turn with what was heard; the stop is its own turn.
    assert [x.turn for x in conv.history.exchanges] == [1, 2]
    assert conv.history.exchanges[0].interrupted
    assert first(events, "asr_final", 2).text == "wait stop"


def test_a_backchannel_once_the_reply_was_heard_lets_it_go_on():
    events, _, conv = converse(paused(at=1.9, more_s=0.3), chat=FakeChat(LONG_REPLY), transcriber=Saying("okay."))
    assert first(events, "continuation", 2).verdict == "backchannel"
    assert first(events, "turn_end", 1).reason == "answered"
    assert first(events, "playback_end", 1).played_s == pytest.approx(1.5)  # all of it
    assert first(events, "turn_end", 2).reason == "backchannel"
    assert [x.turn for x in conv.history.exchanges] == [1]


def test_speech_long_after_the_turn_is_a_barge_in_not_a_continuation():
    events, _, _ = converse(paused(at=2.3), chat=FakeChat(LONG_REPLY))  # 0.58 s of reply heard
    assert "continuation" not in types(events)
    assert first(events, "turn_end", 1).reason == "interrupted"


def test_no_continuation_when_switched_off():
    events, _, _ = converse(paused(at=1.62), chat=FakeChat(LONG_REPLY), turn={"continuation_window_ms": 0})
    assert "continuation" not in types(events)
    assert first(events, "turn_end", 1).reason != "continued"


# ------------------------------------------------------------- pure rules

S = ContinuationSettings(window_ms=1500, max_heard_ms=500, min_speech_ms=200,
                         stop_phrases=("wait", "stop", "hold on"), backchannels=("okay", "mm-hmm", "yeah"))


@pytest.mark.parametrize(("gap", "heard", "ok"), [
    (0, 0, True), (1500, 0, True), (1501, 0, False), (800, 500, True), (800, 501, False), (-10, 0, False),
])
def test_the_window(gap, heard, ok):
    assert may_continue(gap, heard, S) is ok


def test_no_window_when_zero():
    assert not may_continue(0, 0, ContinuationSettings(0, 500, 200, (), ()))


@pytest.mark.parametrize(("before", "together", "added"), [
    ("And so my fellow Americans.", "And so my fellow Americans, ask not", ["ask", "not"]),
    ("1.", "One, two, three.", ["two", "three"]),  # the first part rewritten once heard with the rest
    ("Turn on the", "Turn on the kitchen light.", ["kitchen", "light"]),
    ("What time is it?", "What time is it?", []),
    ("", "hello there", ["hello", "there"]),
])
def test_added_words(before, together, added):
    assert added_words(before, together) == added


@pytest.mark.parametrize(("added", "heard", "verdict"), [
    ([], False, Verdict.NOISE),
    (["in", "paris"], True, Verdict.CONTINUATION),
    (["wait", "a", "second"], False, Verdict.INTERRUPTION),
    (["hold", "on"], True, Verdict.INTERRUPTION),
    (["okay"], True, Verdict.BACKCHANNEL),
    (["okay", "yeah"], True, Verdict.BACKCHANNEL),
    (["okay"], False, Verdict.CONTINUATION),  # nothing was said yet to acknowledge
    (["okay", "and", "tomorrow"], True, Verdict.CONTINUATION),
    (["waiting", "room"], False, Verdict.CONTINUATION),  # a stop word only as a whole word
    (["stop", "wait"], True, Verdict.INTERRUPTION),  # stop phrases said as one
    (["wait", "stop", "it", "now"], True, Verdict.INTERRUPTION),
    # A sentence that starts with one goes on with the utterance:
    (["hold", "on", "to", "the", "rail", "please"], False, Verdict.CONTINUATION),
])
def test_judge(added, heard, verdict):
    assert judge(added, heard, 400, S) is verdict


def test_no_as_the_first_word_of_a_sentence_is_not_a_stop():
    # "You can change the brightness of these lights. | No colour changing
    # though, but you still get the control on here": one description.
    s = ContinuationSettings(1500, 500, 200, tuple(TurnConfig().stop_phrases), ("okay",))
    added = words_of("No colour changing though, but you still get the control on here.")
    assert judge(added, False, 2400, s) is Verdict.CONTINUATION
    assert judge(words_of("No, no."), False, 600, s) is Verdict.INTERRUPTION
    assert judge(words_of("No, stop."), True, 600, s) is Verdict.INTERRUPTION


def test_a_voice_with_no_new_words_goes_on_with_the_utterance():
    # "one, | two": Whisper wrote the whole as "1." again; the voice was real.
    assert judge([], False, 400, S, voiced=True) is Verdict.CONTINUATION
    assert judge([], False, 400, S, voiced=False) is Verdict.NOISE
    assert judge([], False, 120, S, voiced=True) is Verdict.NOISE


def test_a_short_sound_is_noise_whatever_whisper_made_of_it():
    assert judge(["you"], False, 120, S) is Verdict.NOISE
    assert judge(["two"], False, 240, S) is Verdict.CONTINUATION


def test_a_click_in_the_pause_does_not_swallow_the_words_after_it():
    # A click 0.26 s into the pause opens an utterance that is judged a noise;
    # the user then goes on within it: judged again, answered as one turn.
    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.44), tone(0.06), silence(0.3), tone(0.6), silence(4.0)])
    events, _, conv = converse(audio, chat=FakeChat(LONG_REPLY))
    verdicts = [e.verdict for e in events if e.type == "continuation"]
    assert verdicts[0] == "noise" and verdicts[-1] == "continuation", verdicts
    answered = [e for e in events if e.type == "turn_end" and e.reason == "answered"]
    assert len(answered) == 1 and answered[0].text == "speech 17", answered
    assert [x.user for x in conv.history.exchanges] == ["speech 17"]


def test_a_click_that_ended_before_the_words_resumed_still_lets_them_continue():
    # The click's own utterance ends (judged a noise) before the user goes on.
    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.44), tone(0.06), silence(0.5), tone(0.6), silence(4.0)])
    # (the fake reply is heard fast: allow a second of it, the limit is not what is tested)
    events, _, conv = converse(audio, chat=FakeChat(LONG_REPLY),
                               turn={"unsure_silence_ms": 300, "continuation_max_heard_ms": 1000})
    ends = [(e.turn, e.reason) for e in events if e.type == "turn_end"]
    verdicts = [(e.turn, e.of_turn, e.verdict) for e in events if e.type == "continuation"]
    assert verdicts[0][2] == "noise" and verdicts[-1][1:] == (1, "continuation"), verdicts
    assert (2, "noise") in ends and (1, "continued") in ends, ends
    answered = [e for e in events if e.type == "turn_end" and e.reason == "answered"]
    assert len(answered) == 1 and answered[0].text == "speech 17", answered
    assert [x.user for x in conv.history.exchanges] == ["speech 17"]
