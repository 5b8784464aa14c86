"""Orchestration with fake models in simulated time: a manual clock, the paced
driver with ``realtime=False`` and every model call inline on the event loop, so
that each test's events are the same on every run (no real time, no threads, no
real models)."""

from __future__ import annotations

import numpy as np

from tests.support.conversation import converse, first, types
from tests.support.fakes import FakeChat, FakeTranscriber, silence, tone


def test_two_questions_give_two_answered_turns_in_order():
    audio = np.concatenate([silence(0.5), tone(1.0), silence(3.0), tone(1.5), silence(1.0)])
    events, out, conv = converse(audio)
    ends = [e for e in events if e.type == "turn_end"]
    assert [(e.turn, e.reason) for e in ends] == [(1, "answered"), (2, "answered")]
    for turn in (1, 2):
        seq = [t for t in types(events, turn) if t not in ("asr_partial",)]
        assert seq.index("speech_start") < seq.index("speech_end") < seq.index("end_of_turn")
        for a, b in [("asr_final", "llm_first_token"), ("llm_first_token", "llm_first_clause"),
                     ("llm_first_clause", "tts_first_audio"), ("playback_start", "playback_end"),
                     ("playback_end", "turn_end")]:
            assert first(events, a, turn).t <= first(events, b, turn).t, (a, b)
        # never answer before the user is done
        assert first(events, "playback_start", turn).t >= first(events, "end_of_turn", turn).t
    assert ends[0].text == "speech 10"
    assert ends[0].reply == "Hello there, friend. How are you today?"  # max_sentences=2
    # the history holds both exchanges, oldest first
    assert [ex.user for ex in conv.history.exchanges] == ["speech 10", "speech 15"]


def test_the_same_audio_gives_the_same_events_every_time():
    # What makes exact bounds possible in these tests: nothing depends on
    # threads or on how busy the machine is.
    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.3), tone(1.0), silence(2.0),
                            tone(0.5), silence(2.0)])
    runs = [converse(audio, chat=FakeChat("One two three four five. Six seven."))[0] for _ in range(3)]
    assert runs[0] == runs[1] == runs[2] and len(runs[0]) > 20


def test_output_is_aligned_with_the_playback_events():
    audio = np.concatenate([silence(0.5), tone(1.0), silence(3.0)])
    events, out, _ = converse(audio)
    start = first(events, "playback_start", 1).t
    end = first(events, "playback_end", 1).t
    loud = np.flatnonzero(np.abs(out) > 0.2)
    assert abs(loud[0] / 16000 - start) < 1e-3
    assert abs((loud[-1] + 1) / 16000 - end) < 1e-3
    assert abs(first(events, "playback_end", 1).played_s - (end - start)) < 1e-3


def test_mid_sentence_pause_discards_speculation_and_answers_the_whole_utterance():
    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.3), tone(1.0), silence(3.0)])
    events, out, _ = converse(audio)
    assert "speculation_discarded" in types(events)
    assert [e.text for e in events if e.type == "asr_final"] == ["speech 20"]
    assert [e.turn for e in events if e.type == "turn_end"] == [1]
    # nothing of the discarded speculation was played during the pause
    assert not np.abs(out[: int(2.7 * 16000)]).max() > 0.2


def test_speculation_off_still_answers():
    audio = np.concatenate([silence(0.3), tone(1.0), silence(2.5)])
    events, _, _ = converse(audio, turn={"speculative": False})
    assert "asr_final" in types(events, 1) and first(events, "turn_end", 1).reason == "answered"


def test_noise_only_utterance_ends_without_a_reply():
    class Mute(FakeTranscriber):
        def transcribe(self, audio):
            from voiceagent.stages.protocols import Transcript
            return Transcript("", 0.0)

    audio = np.concatenate([silence(0.3), tone(0.5), silence(2.0)])
    events, out, _ = converse(audio, transcriber=Mute())
    assert first(events, "turn_end", 1).reason == "no_speech"
    assert "playback_start" not in types(events)


def test_llm_failure_is_reported_and_the_conversation_goes_on():
    audio = np.concatenate([silence(0.3), tone(1.0), silence(2.0), tone(1.0), silence(2.0)])
    events, _, _ = converse(audio, chat=FakeChat(fail=True))
    errors = [e for e in events if e.type == "error"]
    assert errors and errors[0].stage == "llm"
    ends = [e for e in events if e.type == "turn_end"]
    assert [(e.turn, e.reason) for e in ends] == [(1, "error"), (2, "error")]


def test_partials_while_speaking():
    audio = np.concatenate([silence(0.3), tone(3.0), silence(2.0)])
    events, _, _ = converse(audio, asr={"partial_interval_ms": 500})
    partials = [e for e in events if e.type == "asr_partial"]
    assert partials and all(e.t < first(events, "speech_end", 1).t + 0.2 for e in partials)


def test_history_is_sent_to_the_model():
    chat = FakeChat()
    audio = np.concatenate([silence(0.3), tone(1.0), silence(3.0), tone(0.5), silence(2.0)])
    converse(audio, chat=chat)
    last = chat.seen[-1]
    assert last[0]["role"] == "system"
    assert [m["role"] for m in last[1:]] == ["user", "assistant", "user"]


def test_next_turn_prefix_is_prefilled_after_each_turn():
    chat = FakeChat()
    audio = np.concatenate([silence(0.3), tone(1.0), silence(3.0)])
    converse(audio, chat=chat)
    assert [m["role"] for m in chat.prefilled] == ["system", "user", "assistant"]
