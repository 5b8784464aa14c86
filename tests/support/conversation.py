"""A conversation with fake models in simulated time, for the orchestration tests:
a manual clock, the paced driver with ``realtime=False`` and every model call
inline on the event loop, so that each test's events are the same on every run
(no real time, no threads, no real models)."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.support.fakes import EnergyVad, FakeChat, FakeSynth, FakeTranscriber
from voiceagent.transports.paced import PacedDuplex
from voiceagent.audio.speaker import Speaker
from voiceagent.audio.streams import ArrayInput, MemoryOutput
from voiceagent.clock import ManualClock
from voiceagent.config import Config
from voiceagent.dialogue.conversation import Conversation
from voiceagent.events import EventBus
from voiceagent.stages.workers import InlineWorker, Workers

# Two sentences of 15 words: 0.75 s of fake speech each.
LONG_REPLY = " ".join(f"w{i}" for i in range(1, 16)) + ". " + " ".join(f"v{i}" for i in range(1, 16)) + "."


class Scripted:
    """The conversation as the driver sees it, plus calls made at given input times
    (what the daemon does on an MQTT command or a wake word)."""

    def __init__(self, conv: Conversation, actions) -> None:
        self.conv = conv
        self.actions = sorted(actions, key=lambda a: a[0])

    def on_block(self, block, t: float) -> None:
        while self.actions and self.actions[0][0] <= t:
            self.actions.pop(0)[1](self.conv)
        self.conv.on_block(block, t)

    def on_playback(self, notice, t: float) -> None:
        self.conv.on_playback(notice, t)

    @property
    def idle(self) -> bool:
        return not self.actions and self.conv.idle


def converse(
    audio: np.ndarray, chat: FakeChat | None = None, transcriber=None, end_model=None,
    second_stage=None, actions=(), gate=None, commands=None, **cfg_over,
):
    cfg = Config(**cfg_over)
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    clock = ManualClock()
    speaker = Speaker(16000)
    chat = chat or FakeChat()
    conv = Conversation(
        cfg, EnergyVad(), transcriber or FakeTranscriber(), chat, FakeSynth(), speaker, bus, clock,
        end_model=end_model, second_stage=second_stage, gate=gate, workers=Workers.make(cfg, InlineWorker),
        prompt_cache=chat, end_of_message=chat, commands=commands,
    )
    if gate is not None:
        bus.subscribe(gate.on_event)
    rec = MemoryOutput()
    driver = PacedDuplex(ArrayInput(audio), rec, speaker, clock, 320, realtime=False)

    async def go():
        try:
            await driver.run(Scripted(conv, actions))
        finally:
            await conv.aclose()

    asyncio.run(go())
    return events, rec.audio, conv


def types(events, turn=None):
    return [e.type for e in events if turn is None or e.turn == turn]


def first(events, type_, turn):
    return next(e for e in events if e.type == type_ and e.turn == turn)
