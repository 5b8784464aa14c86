"""Barge-in orchestration with fake models on a manual clock.

The real-model siblings are in test_realmodel_duplex.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.conversation import LONG_REPLY, converse, first, types
from tests.support.fakes import FakeChat, FakeTranscriber, silence, tone
from voiceagent.stages.protocols import Transcript

RATE = 16000


class Scripted(FakeTranscriber):
    """Answers each utterance by how long it was: short ones get ``short_text``."""

    def __init__(self, short_text: str) -> None:
        super().__init__()
        self.short_text = short_text

    def transcribe(self, audio: np.ndarray) -> Transcript:
        heard = super().transcribe(audio)
        if heard.text and int(heard.text.split()[1]) <= 6:
            return Transcript(self.short_text, 0.0)
        return heard


def question_then(interruption: np.ndarray, at: float = 2.6) -> np.ndarray:
    """A 1 s question at 0.3 s (answered from ~2.06 s), then ``interruption`` at ``at``."""
    lead = np.concatenate([silence(0.3), tone(1.0)])
    return np.concatenate([lead, silence(at - lead.size / RATE), interruption, silence(3.0)])


def quiet_after(out: np.ndarray, t: float, until: float) -> bool:
    return not np.abs(out[int(t * RATE) : int(until * RATE)]).max() > 1e-3


def test_talking_over_the_reply_stops_it_at_once_and_is_answered_next():
    audio = question_then(tone(1.2))
    events, out, conv = converse(audio, chat=FakeChat(LONG_REPLY))
    assert first(events, "playback_start", 1).t < 2.6  # it was speaking
    suspected = first(events, "barge_in_suspected", 1)
    barge = first(events, "barge_in", 1)
    assert suspected.by_turn == barge.by_turn == 2
    # Suspected vad.start_ms (60 ms) after the onset at 2.60 s, but paused at
    # the voice's first frame already: the next output block (2.64 s) fades out
    # over 5 ms.
    assert suspected.t == pytest.approx(2.66)
    stopped = first(events, "playback_end", 1).t
    assert stopped == pytest.approx(2.645)
    assert quiet_after(out, stopped + 0.01, first(events, "playback_start", 2).t)
    # it stopped mid-reply, the history keeps only what was played
    played = barge.played_s
    assert 0.3 < played < 1.0 and abs(first(events, "playback_end", 1).played_s - played) < 1e-6
    end1 = first(events, "turn_end", 1)
    assert end1.reason == "interrupted" and end1.reply == barge.heard
    assert 0 < len(barge.heard.split()) < 20 and LONG_REPLY.startswith(barge.heard)
    ex = conv.history.exchanges[0]
    assert ex.interrupted and ex.assistant == barge.heard
    # the interruption is the next turn, answered in full
    assert first(events, "turn_end", 2).reason == "answered"
    assert first(events, "asr_final", 2).text == "speech 12"


def test_no_more_tokens_after_a_barge_in():
    audio = question_then(tone(1.2))
    events, _, _ = converse(audio, chat=FakeChat(LONG_REPLY))
    barge = first(events, "barge_in", 1)
    late = [e for e in events if e.turn == 1 and e.t > barge.t and e.type not in ("playback_end", "turn_end")]
    assert late == []


def test_backchannel_pauses_then_resumes_the_reply_to_its_end():
    audio = question_then(tone(0.45))
    events, out, conv = converse(audio, chat=FakeChat(LONG_REPLY), transcriber=Scripted("Mm-hmm."))
    assert "barge_in" not in types(events)
    rejected = first(events, "barge_in_rejected", 1)
    assert rejected.verdict == "backchannel" and rejected.by_turn == 2
    assert abs(first(events, "playback_end", 1).played_s - 1.5) < 0.01  # all of it
    end1 = first(events, "turn_end", 1)
    assert end1.reason == "answered" and end1.reply.endswith("v15.")
    assert first(events, "turn_end", 2).reason == "backchannel"
    assert [ex.turn for ex in conv.history.exchanges] == [1]  # "mm-hmm" is not an exchange


class Knock:
    """A second-stage VAD that takes the question (the first 2 s) for a voice and
    nothing after it."""

    def __init__(self):
        self.frames = 0

    def probability(self, frame):
        self.frames += 1
        return 0.9 if self.frames * frame.size <= 2 * RATE else 0.02

    def reset(self):
        pass


def test_a_knock_the_second_stage_rejects_resumes_without_waiting_for_words():
    audio = question_then(tone(0.15))
    events, _, _ = converse(audio, chat=FakeChat(LONG_REPLY), second_stage=Knock())
    assert "barge_in" not in types(events)
    rejected = first(events, "barge_in_rejected", 1)
    # at the pause: the knock's end (2.75 s) plus vad.speculate_ms (20 ms), to the block
    assert rejected.verdict == "noise" and rejected.t == pytest.approx(2.78)
    assert abs(first(events, "playback_end", 1).played_s - 1.5) < 0.01
    assert first(events, "turn_end", 1).reason == "answered"


def test_a_short_sound_with_words_resumes_only_once_the_pause_is_the_end():
    # Too short to tell (SHORT): it may be a "Wait," before a comma pause, so
    # the reply stays paused until barge_in.end_silence_ms ends the utterance.
    audio = question_then(tone(0.15))
    events, out, _ = converse(audio, chat=FakeChat(LONG_REPLY))
    assert "barge_in" not in types(events)
    rejected = first(events, "barge_in_rejected", 1)
    end2 = first(events, "end_of_turn", 2)
    assert rejected.verdict == "noise" and rejected.t >= end2.t >= 2.75 + 0.6
    assert quiet_after(out, first(events, "barge_in_suspected", 1).t + 0.05, end2.t)
    assert abs(first(events, "playback_end", 1).played_s - 1.5) < 0.01
    assert first(events, "turn_end", 1).reason == "answered"
    assert first(events, "turn_end", 2).reason == "noise"
    assert "llm_first_token" not in types(events, 2)  # never answered, not even speculatively


def test_a_short_word_that_is_not_a_backchannel_interrupts():
    audio = question_then(tone(0.45))
    events, _, _ = converse(audio, chat=FakeChat(LONG_REPLY), transcriber=Scripted("Stop."))
    assert first(events, "barge_in", 1).by_turn == 2
    assert first(events, "turn_end", 1).reason == "interrupted"
    assert first(events, "turn_end", 2).reason == "answered"


def test_ducking_lowers_the_reply_while_judging():
    audio = question_then(tone(0.45))
    events, out, _ = converse(
        audio, chat=FakeChat(LONG_REPLY), transcriber=Scripted("Yeah."),
        barge_in={"on_onset": "duck", "duck_db": -20},
    )
    suspected = first(events, "barge_in_suspected", 1).t
    rejected = first(events, "barge_in_rejected", 1).t
    mid = out[int((suspected + 0.05) * RATE) : int((rejected - 0.01) * RATE)]
    assert mid.size and np.allclose(np.abs(mid).max(), 0.025, atol=2e-3)  # 0.25 at -20 dB
    assert abs(first(events, "playback_end", 1).played_s - 1.5) < 0.01


def test_barge_in_off_lets_the_reply_finish_and_answers_after_it():
    audio = question_then(tone(1.2))
    events, _, _ = converse(audio, chat=FakeChat(LONG_REPLY), barge_in={"enabled": False})
    assert not {"barge_in", "barge_in_suspected"} & set(types(events))
    assert [e.reason for e in events if e.type == "turn_end"] == ["answered", "answered"]


def test_a_short_pause_inside_an_interruption_does_not_split_it():
    # "Wait, | what is ...": 0.3 s into a 0.35 s comma pause both cues say
    # complete (250 ms), but over a reply the utterance needs barge_in.end_silence_ms.
    class Complete:
        sample_rate = 16000
        def probability(self, audio):
            return 0.99

    interruption = np.concatenate([tone(0.4), silence(0.35), tone(1.2)])
    events, out, _ = converse(
        question_then(interruption), chat=FakeChat(LONG_REPLY), end_model=Complete()
    )
    assert first(events, "barge_in", 1).by_turn == 2
    assert [e.turn for e in events if e.type == "speech_start"] == [1, 2]
    assert first(events, "turn_end", 2).reason == "answered"


def test_a_word_too_short_to_judge_before_a_comma_pause_keeps_the_reply_paused():
    # "Wait, | what is ...", with "Wait" under min_speech_ms: the final
    # transcript of the pause must not resume the reply for the pause's length.
    interruption = np.concatenate([tone(0.15), silence(0.35), tone(1.2)])
    events, out, _ = converse(question_then(interruption), chat=FakeChat(LONG_REPLY))
    assert "barge_in_rejected" not in types(events)
    assert first(events, "barge_in", 1).by_turn == 2
    suspected = first(events, "barge_in_suspected", 1).t
    assert quiet_after(out, suspected + 0.05, first(events, "playback_start", 2).t)
    assert first(events, "turn_end", 2).reason == "answered"


class Voiceless:
    """A second-stage VAD that takes nothing for a voice."""

    def probability(self, frame):
        return 0.02


def test_a_sound_with_no_voice_in_it_is_never_answered():
    # The step from a stream's digital silence into its room tone, which
    # webrtcvad took for speech and Whisper for "It's a good time.".
    audio = np.concatenate([silence(0.5), tone(0.12), silence(3.0)])
    events, out, _ = converse(audio, chat=FakeChat(LONG_REPLY), transcriber=Scripted("It's a good time."),
                              second_stage=Voiceless())
    assert first(events, "turn_end", 1).reason == "noise"
    assert "playback_start" not in types(events) and not np.abs(out).max() > 1e-3


def test_a_blip_over_the_reply_pauses_it_for_a_moment_only():
    # Held at the blip's frame (no utterance opens: too short), resumed within
    # vad.start_ms and two frames; the whole reply is still heard.
    events, out, _ = converse(question_then(tone(0.02)), chat=FakeChat(LONG_REPLY))
    assert "barge_in_suspected" not in types(events)
    assert first(events, "turn_end", 1).reason == "answered"
    assert first(events, "playback_end", 1).played_s == pytest.approx(1.5)
    assert np.abs(out[int(2.8 * RATE) : int(3.0 * RATE)]).max() > 1e-3  # playing again
