"""The daemon's pieces with fakes: the assistant state, the conversation log, the
mute switch and the wake word detector between the driver and the conversation.
The real thing, end to end, is in test_serve.py."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from tests.support.fakes import EnergyVad, FakeChat, FakeSynth, FakeTranscriber, silence, tone
from voiceagent.transports.paced import PacedDuplex
from voiceagent.audio.speaker import Speaker
from voiceagent.audio.streams import ArrayInput, MemoryOutput
from voiceagent.clock import ManualClock
from voiceagent.config import Config
from voiceagent.session.listener import Listener
from voiceagent.session.log import ConversationLog, TurnSummaries
from voiceagent.session.state import AssistantState, StateReporter
from voiceagent.dialogue.conversation import Conversation
from voiceagent.events import (
    EndOfTurn,
    EventBus,
    PlaybackEnd,
    PlaybackStart,
    SpeechEnd,
    SpeechStart,
    TextRequest,
    TurnEnd,
    WakeWordDetected,
)
from voiceagent.rules.wake_gate import WakeGate, WakeGateSettings
from voiceagent.stages.wake import WakeWordDetector
from voiceagent.stages.workers import InlineWorker, Workers


def reporter(gate=None):
    seen: list[str] = []
    return StateReporter(lambda s: seen.append(s.value), gate), seen


def test_state_follows_a_spoken_turn():
    rep, seen = reporter()
    for e in [SpeechStart(1.0, 1), SpeechEnd(2.0, 1), EndOfTurn(2.3, 1), PlaybackStart(2.6, 1),
              PlaybackEnd(4.0, 1, 1.4), TurnEnd(4.0, 1, "q", "a", "answered")]:
        rep(e)
    assert seen == ["listening", "thinking", "speaking", "idle"]


def test_speech_without_the_wake_word_leaves_it_idle():
    g = WakeGate(WakeGateSettings(listen_s=3.0, follow_up_s=6.0, phrase=""))
    rep, seen = reporter(g)
    for e in [SpeechStart(1.0, 1), EndOfTurn(2.3, 1), TurnEnd(2.5, 1, "tv", "", "not_addressed")]:
        rep(e)
    assert seen == []


def test_the_wake_word_makes_it_listen_then_idle_when_nothing_follows():
    g = WakeGate(WakeGateSettings(listen_s=3.0, follow_up_s=6.0, phrase=""))
    rep, seen = reporter(g)
    rep(SpeechStart(1.0, 1))
    g.heard(1.6)
    rep(WakeWordDetected(1.6, 0, "hey_jarvis", 0.9))
    rep(EndOfTurn(2.3, 1))
    rep(TurnEnd(2.4, 1, "", "", "wake_word"))
    assert seen == ["listening", "thinking", "listening"]  # then waiting for the request
    rep.tick(4.0)
    assert rep.state is AssistantState.LISTENING
    rep.tick(4.7)
    assert seen[-1] == "idle"


def test_a_typed_request_thinks_then_speaks():
    rep, seen = reporter()
    for e in [TextRequest(1.0, 1, "ask", "hi"), PlaybackStart(1.4, 1), PlaybackEnd(2.0, 1, 0.6),
              TurnEnd(2.0, 1, "hi", "hello", "answered")]:
        rep(e)
    assert seen == ["thinking", "speaking", "idle"]


def test_the_conversation_log_has_a_line_per_addressed_turn(tmp_path):
    path = tmp_path / "sub" / "log.jsonl"
    log = ConversationLog(path)
    summaries = TurnSummaries([log])
    for e in [
        SpeechStart(0.5, 1), SpeechEnd(1.5, 1), TurnEnd(1.8, 1, "tv talk", "", "not_addressed"),
        SpeechStart(3.0, 2), SpeechEnd(4.0, 2), PlaybackStart(4.45, 2),
        TurnEnd(6.0, 2, "What time is it?", "Noon.", "answered"),
        TextRequest(7.0, 3, "ask", "Tell me a story."), PlaybackStart(7.3, 3),
        TurnEnd(8.0, 3, "Tell me a story.", "Once", "stopped"),
    ]:
        summaries(e)
        if isinstance(e, TurnEnd):  # on disk as soon as the turn ends, before close
            lines = path.read_text().splitlines()
    log.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["turn"], x["source"], x["reason"], x["interrupted"], x["latency_ms"]) for x in lines] == [
        (2, "voice", "answered", False, 450), (3, "ask", "stopped", True, 300),
    ]
    assert lines[0]["transcript"] == "What time is it?" and lines[0]["reply"] == "Noon."
    assert lines[0]["time"].endswith("+00:00")


def test_an_unwritable_conversation_log_is_a_clear_error(tmp_path):
    import pytest

    from voiceagent.errors import VoiceAgentError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(VoiceAgentError, match="serve.conversation_log"):
        ConversationLog(blocker / "log.jsonl")


class Always:
    """A wake word model that hears the wake word in every loud chunk."""

    def probabilities(self, pcm: bytes) -> list[float]:
        samples = np.frombuffer(pcm, np.int16)
        return [1.0 if np.abs(samples).max() > 3000 else 0.0] * (samples.size // 1280)

    def warm_up(self) -> None:
        pass

    def reset(self) -> None:
        pass


def listen(audio, muted=False, detector=None, gate=None):
    cfg = Config()
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    clock = ManualClock()
    speaker = Speaker(16000)
    workers = Workers.make(cfg, InlineWorker)
    conv = Conversation(cfg, EnergyVad(), FakeTranscriber(), FakeChat(), FakeSynth(), speaker, bus, clock,
                        gate=gate, workers=workers, prompt_cache=None, end_of_message=None)
    if gate is not None:
        bus.subscribe(gate.on_event)
    listener = Listener(conv, bus, 16000, detector, gate, worker=workers.wake)
    listener.muted = muted
    driver = PacedDuplex(ArrayInput(audio), MemoryOutput(), speaker, clock, 320, realtime=False)

    async def go():
        try:
            await driver.run(listener)
        finally:
            await listener.aclose()
            await conv.aclose()

    asyncio.run(go())
    return events


QUESTION = np.concatenate([silence(0.5), tone(1.0), silence(3.0)])


def test_muted_it_hears_nothing():
    assert [e.type for e in listen(QUESTION, muted=True)] == []


def test_the_detector_wakes_the_gate_and_the_request_is_answered():
    detector = WakeWordDetector("hey_jarvis", 0.5, 16000, backend=Always())
    g = WakeGate(WakeGateSettings(listen_s=8.0, follow_up_s=6.0, phrase=""))
    events = listen(QUESTION, detector=detector, gate=g)
    wakes = [e for e in events if e.type == "wake_word"]
    assert len(wakes) == 1 and 0.5 < wakes[0].t < 0.7
    assert [e.reason for e in events if e.type == "turn_end"] == ["answered"]


def test_without_the_detector_firing_the_request_is_ignored():
    g = WakeGate(WakeGateSettings(listen_s=8.0, follow_up_s=6.0, phrase=""))
    events = listen(QUESTION, gate=g)
    assert [e.reason for e in events if e.type == "turn_end"] == ["not_addressed"]


def test_freed_memory_is_given_back_only_when_idle_after_work_and_not_too_often():
    from voiceagent.host.memory import MemoryTrimmer

    now = [100.0]
    trimmer = MemoryTrimmer(interval_s=30.0, clock=lambda: now[0])
    now[0] += 31
    assert not trimmer.idle(), "nothing ran since the start: nothing to give back"
    trimmer.busy()
    assert trimmer.idle()
    trimmer.busy()
    now[0] += 10
    assert not trimmer.idle(), "at most every interval_s"
    now[0] += 21
    assert trimmer.idle()
