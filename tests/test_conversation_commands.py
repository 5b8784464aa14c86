"""Typed commands (say, ask, stop) and the wake word gate, with fake models on a
manual clock. The real-model siblings are in test_serve.py (the daemon over MQTT)
and test_wake.py (the detector)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.conversation import converse, first, types
from tests.support.fakes import FakeChat, silence, tone
from voiceagent.rules.wake_gate import WakeGate, WakeGateSettings

RATE = 16000
LONG_REPLY = " ".join(f"w{i}" for i in range(1, 31)) + "."  # 1.5 s of fake speech


def ends(events):
    return [(e.turn, e.reason) for e in events if e.type == "turn_end"]


def test_say_speaks_the_text_as_it_is_without_the_llm():
    chat = FakeChat()
    events, out, conv = converse(silence(3.0), chat=chat, actions=[(0.5, lambda c: c.say("one two three four"))])
    request = first(events, "text_request", 1)
    assert (request.command, request.text) == ("say", "one two three four")
    start, end = first(events, "playback_start", 1), first(events, "playback_end", 1)
    assert 0.5 <= start.t < 0.6 and abs(end.played_s - 0.2) < 1e-6  # 4 words x 50 ms
    assert np.abs(out[int(start.t * RATE) : int(end.t * RATE)]).max() > 0.2
    assert chat.seen == [] and ends(events) == [(1, "answered")]
    assert first(events, "turn_end", 1).reply == "one two three four"
    assert conv.history.exchanges == []  # an announcement is not an exchange


def test_ask_answers_the_text_and_keeps_it_in_the_history():
    events, _, conv = converse(silence(3.0), actions=[(0.5, lambda c: c.ask("What is up?"))])
    assert first(events, "text_request", 1).command == "ask"
    assert first(events, "playback_start", 1).t < 0.7
    assert ends(events) == [(1, "answered")]
    assert conv.history.exchanges[0].user == "What is up?"


def test_stop_silences_the_reply_at_once_and_keeps_what_was_heard():
    events, out, conv = converse(
        silence(4.0), chat=FakeChat(LONG_REPLY),
        actions=[(0.5, lambda c: c.ask("Talk.")), (1.2, lambda c: c.stop())],
    )
    # In simulated time the reply is ready within the block of the ask (0.50 s)
    # and plays from the next output block (0.54 s: one block of output latency).
    # The stop comes with the input block at 1.20 s, after that block's output
    # was pulled: 35 blocks (0.70 s) were played and the output is quiet at 1.24 s.
    start, end = first(events, "playback_start", 1), first(events, "playback_end", 1)
    assert start.t == pytest.approx(0.54) and end.t == pytest.approx(1.24)
    assert end.played_s == pytest.approx(0.70)
    assert np.abs(out[int(1.24 * RATE) :]).max() == 0 and np.abs(out[int(1.22 * RATE) : int(1.24 * RATE)]).min() > 0
    turn_end = first(events, "turn_end", 1)
    assert turn_end.reason == "stopped" and LONG_REPLY.startswith(turn_end.reply) and turn_end.reply
    ex = conv.history.exchanges[0]
    assert ex.interrupted and ex.assistant == turn_end.reply


def test_stop_with_nothing_playing_does_nothing():
    events, _, _ = converse(silence(1.0), actions=[(0.5, lambda c: c.stop())])
    assert ends(events) == []


def test_a_new_request_replaces_the_reply_that_is_playing():
    events, _, _ = converse(
        silence(5.0), chat=FakeChat(LONG_REPLY),
        actions=[(0.5, lambda c: c.ask("Talk.")), (1.0, lambda c: c.say("Dinner is ready."))],
    )
    assert ends(events) == [(1, "stopped"), (2, "answered")]
    assert first(events, "playback_start", 2).t >= first(events, "playback_end", 1).t


# ----------------------------------------------------------------- wake gate


def gate(**kw) -> WakeGate:
    return WakeGate(WakeGateSettings(**{"listen_s": 3.0, "follow_up_s": 2.0, "phrase": "", **kw}))


QUESTION = np.concatenate([silence(0.5), tone(1.0), silence(3.0)])
"""An utterance from 0.5 to 1.5 s, answered from ~1.8 s."""


def test_without_the_wake_word_speech_is_not_answered():
    events, out, _ = converse(QUESTION, gate=gate())
    assert ends(events) == [(1, "not_addressed")]
    assert "llm_first_token" not in types(events) and np.abs(out).max() == 0


def test_the_wake_word_during_the_utterance_gets_it_answered():
    g = gate()
    events, _, _ = converse(QUESTION, gate=g, actions=[(1.0, lambda c: g.heard(1.0))])
    assert ends(events) == [(1, "answered")]


def test_a_wake_word_heard_only_after_the_pause_still_gets_it_answered():
    # The detector may answer after the speculative transcript: the reply then
    # starts when the turn ends.
    g = gate()
    events, _, _ = converse(QUESTION, gate=g, actions=[(1.6, lambda c: g.heard(1.45))])
    assert ends(events) == [(1, "answered")]


def test_the_wake_word_alone_opens_a_window_for_the_request():
    g = gate()
    audio = np.concatenate([QUESTION, tone(1.0), silence(3.0), tone(1.0), silence(3.0)])
    # request at 4.5 s (within listen_s of the wake word at 0.3), another at 8.5 s
    events, _, _ = converse(audio, gate=g, actions=[(0.3, lambda c: g.heard(0.3))])
    assert ends(events)[0] == (1, "answered")  # "speech 10" after the wake word
    # the reply of turn 1 ended at ~2.8 s; turn 2 starts at 4.5 s: outside the
    # 2 s follow-up and the wake word is used up
    assert ends(events)[1:] == [(2, "not_addressed"), (3, "not_addressed")]


def test_a_follow_up_right_after_the_reply_needs_no_wake_word():
    g = gate(follow_up_s=3.0)
    audio = np.concatenate([QUESTION, tone(1.0), silence(3.0)])
    events, _, _ = converse(audio, gate=g, actions=[(1.0, lambda c: g.heard(1.0))])
    # turn 1's reply ends at ~2.3 s; turn 2 starts at 4.5 s, within 3 s of it
    assert first(events, "turn_end", 1).t < 4.5 < first(events, "turn_end", 1).t + 3.0
    assert ends(events) == [(1, "answered"), (2, "answered")]


def test_typed_requests_need_no_wake_word():
    events, _, _ = converse(silence(2.0), gate=gate(), actions=[(0.5, lambda c: c.ask("Hi."))])
    assert ends(events) == [(1, "answered")]


def test_stop_releases_a_reply_held_for_speech_over_it():
    # The user talks over the reply (held while judged), Home Assistant presses
    # stop and then sends an announcement: it plays at once.
    audio = np.concatenate([silence(1.0), tone(2.0), silence(3.0)])
    events, out, _ = converse(
        audio, chat=FakeChat(LONG_REPLY),
        actions=[(0.3, lambda c: c.ask("Talk.")), (1.3, lambda c: c.stop()),
                 (1.3, lambda c: c.say("one two three four"))],
    )
    assert first(events, "barge_in_suspected", 1).t < 1.2
    assert first(events, "turn_end", 1).reason == "stopped"
    say = next(e for e in events if e.type == "text_request" and e.command == "say")
    assert 1.3 <= first(events, "playback_start", say.turn).t < 1.4


def test_a_failing_event_listener_does_not_leave_a_turn_unfinished():
    from voiceagent.events import EventBus

    def broken(event):
        if event.type == "tts_first_audio":
            raise OSError("No space left on device")

    original = EventBus.publish

    def publish(self, event):
        if broken not in self._listeners:
            self._listeners.insert(0, broken)
        original(self, event)

    EventBus.publish = publish
    try:
        events, _, conv = converse(QUESTION)
    finally:
        EventBus.publish = original
    assert ends(events) == [(1, "answered")] and conv.idle


def test_closing_mid_reply_ends_the_turn_as_shutdown_with_what_was_heard():
    import asyncio

    async def close(c):
        await c.aclose()

    events, _, _ = converse(
        silence(3.0), chat=FakeChat(LONG_REPLY),
        actions=[(0.5, lambda c: c.ask("Talk.")), (1.0, lambda c: asyncio.ensure_future(close(c)))],
    )
    end = first(events, "turn_end", 1)
    assert end.reason == "shutdown" and end.reply and LONG_REPLY.startswith(end.reply)
