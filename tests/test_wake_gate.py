"""The wake word gate's rules (pure; the conversation-level tests are in
test_conversation_commands.py, the daemon's in test_serve.py)."""

from __future__ import annotations

from voiceagent.events import PlaybackStart, TurnEnd
from voiceagent.rules.wake_gate import WakeGate, WakeGateSettings


def gate(**kw) -> WakeGate:
    return WakeGate(WakeGateSettings(**{"listen_s": 5.0, "follow_up_s": 4.0, "phrase": "hey jarvis", **kw}))


def test_nothing_is_admitted_before_any_wake_word():
    assert not gate().admits(1.0, 3.0)


def test_a_wake_word_during_the_utterance_admits_it():
    g = gate()
    g.heard(2.0)
    assert g.admits(1.0, 2.5)
    assert g.admits(2.3, 3.0)  # onset found a little after the detection


def test_a_wake_word_before_the_utterance_admits_it_within_listen_s():
    g = gate()
    g.heard(2.0)
    assert g.admits(6.9, 8.0) and not g.admits(7.1, 8.0)
    assert g.awake(6.9) and not g.awake(7.1)


def test_a_wake_word_is_used_up_by_the_request_it_admitted():
    g = gate()
    g.heard(2.0)
    g.accepted(2.5)
    assert not g.admits(4.0, 5.0) and not g.awake(3.0)


def test_follow_up_after_a_reply_and_during_one():
    g = gate()
    g.on_event(PlaybackStart(10.0, 3))
    assert g.admits(11.0, 11.5)  # while it speaks
    g.on_event(TurnEnd(12.0, 3, "q", "a", "answered"))
    assert g.admits(15.9, 17.0) and not g.admits(16.1, 17.0)


def test_no_follow_up_after_a_turn_that_was_not_answered():
    g = gate()
    g.on_event(TurnEnd(12.0, 3, "q", "", "not_addressed"))
    assert not g.admits(12.5, 13.0)


def test_no_follow_up_window_when_it_is_zero():
    g = gate(follow_up_s=0.0)
    g.on_event(PlaybackStart(10.0, 3))
    g.on_event(TurnEnd(12.0, 3, "q", "a", "answered"))
    assert not g.admits(12.5, 13.0)


def test_strip_uses_the_phrase():
    assert gate().strip("Hey Jarvis, what time is it?") == "What time is it?"
    assert gate(phrase="").strip("Hey Jarvis, what time is it?") == "Hey Jarvis, what time is it?"


def test_a_wake_word_long_after_an_utterance_is_not_for_it():
    # TV speech from 0.5 to 1.5 s, "Hey Jarvis" for the next utterance at 2.8 s:
    # a slow transcript of the first must not be let through by it.
    g = gate()
    g.heard(2.8)
    assert not g.admits(0.5, 1.5)
    assert g.admits(0.5, 2.4)  # the detector answers up to lag_s after the end


def test_no_follow_up_after_an_announcement_or_the_stop_button():
    g = gate()
    g.on_event(PlaybackStart(10.0, 3))
    g.on_event(TurnEnd(12.0, 3, "", "Dinner is ready.", "answered"))  # say: no request
    g.on_event(PlaybackStart(13.0, 4))
    g.on_event(TurnEnd(14.0, 4, "Tell me a story.", "Once", "stopped"))
    assert not g.admits(14.5, 15.0)


def test_a_question_of_home_assistants_agent_is_answered_without_the_wake_word():
    from voiceagent.events import IntentHandled

    g = gate(follow_up_s=0.0)
    g.on_event(PlaybackStart(10.0, 3))
    g.on_event(IntentHandled(10.0, 3, "conversation", {}, (), "answered", "Which room?", True))
    g.on_event(TurnEnd(12.0, 3, "turn on the light", "Which room?", "answered"))
    assert g.admits(16.9, 17.5) and not g.admits(17.1, 17.5)  # listen_s (5 s), follow_up_s being 0
