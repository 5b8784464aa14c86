"""Sessions on shared models, with fakes (fast): one wiring for every room, each
room's events, area and timers its own, one worker per model for all of them,
and a reply waiting for a model served before optional work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from tests.support.fakes import EnergyVad, FakeChat, FakeSynth, FakeTranscriber, silence, tone
from voiceagent.audio.streams import ArrayInput, MemoryOutput
from voiceagent.config import config_from_dict
from voiceagent.host.host import Host, share
from voiceagent.session.build import build_session
from voiceagent.stages.lane import Lane, Priority
from voiceagent.stages.loading import Models
from voiceagent.stages.workers import InlineWorker
from voiceagent.transports.paced import FileTransport

ROOMS = [
    {"name": "kitchen", "area": "Kitchen", "input": "k.wav", "output": "k-out.wav"},
    {"name": "office", "input": "o.wav", "output": "o-out.wav", "wake": {"threshold": 0.7}},
]


def _cfg(tmp_path: Path, **extra):
    return config_from_dict({
        # The rooms hear tones (each session's EnergyVad takes them for speech):
        # Silero, still the barge-in's second stage, would call them no voice.
        "vad": {"detector": "webrtc", "voice_probability": 0},
        "wake": {"model": "none", "threshold": 0.4}, "homeassistant": {"area": "Hall"},
        "serve": {"conversation_log": "talk.jsonl"}, "satellites": ROOMS, **extra,
    }, tmp_path)


def test_each_room_sees_its_own_part_of_the_config(tmp_path):
    cfg = _cfg(tmp_path)
    kitchen, office = (cfg.for_room(r) for r in cfg.rooms())
    assert (kitchen.homeassistant.area, office.homeassistant.area) == ("Kitchen", "Hall")
    assert (kitchen.wake.threshold, office.wake.threshold) == (0.4, 0.7)
    assert office.wake.model == "none"  # the rest of the top-level wake: as it is
    assert kitchen.serve.conversation_log.name == "talk-kitchen.jsonl"
    assert kitchen.mqtt.node() != office.mqtt.node() != cfg.mqtt.node()
    one = config_from_dict({"homeassistant": {"area": "Hall"}}, tmp_path)  # no satellites: as before
    [room] = one.rooms()
    assert room.name == "default" and one.for_room(room) is one


def _models() -> Models:
    chat = FakeChat()
    return Models(FakeTranscriber(), chat, FakeSynth(), prompt_cache=chat, end_of_message=chat)


def test_two_rooms_share_the_workers_and_keep_their_own_events_and_timers(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    audio = np.concatenate([silence(0.3), tone(0.8), silence(3.0)])

    async def go():
        host = Host(share(cfg, _models(), workers=InlineWorker))
        events: list = []
        sessions = {}
        for room in cfg.rooms():
            session = build_session(cfg, room, host.shared, several=True)
            session.bus.subscribe(events.append)
            session.conv.vad = EnergyVad()
            sessions[room.name] = session
            out = MemoryOutput()
            host.add(session, FileTransport(session.cfg, ArrayInput(audio), out, endless=False, realtime=False))
        # the same workers in both rooms' conversations
        k, o = sessions["kitchen"].conv, sessions["office"].conv
        assert k.llm_worker is o.llm_worker and k.listening.asr_worker is o.listening.asr_worker
        # a timer set in the kitchen is the kitchen's alone
        timers_k = sessions["kitchen"].home.control.timers
        timers_o = sessions["office"].home.control.timers
        assert timers_k is not timers_o
        await host.run(signals=False)
        return events, sessions

    events, sessions = asyncio.run(go())
    assert {e.session for e in events} == {"kitchen", "office"}
    for name in ("kitchen", "office"):
        ends = [e for e in events if e.session == name and e.type == "turn_end"]
        assert [(e.turn, e.reason) for e in ends] == [(1, "answered")], ends
    assert sessions["kitchen"].home.control.matcher.area == "Kitchen"
    assert sessions["office"].home.control.matcher.area == "Hall"


def test_a_timer_rings_in_the_room_that_set_it(tmp_path):
    cfg = _cfg(tmp_path)

    async def go():
        host = Host(share(cfg, _models(), workers=InlineWorker))
        said = {}
        sessions = [build_session(cfg, room, host.shared) for room in cfg.rooms()]
        for s in sessions:
            s.conv.say = lambda text, name=s.name: said.setdefault(name, text)
        sessions[0].home.control.timers.start(1, "tea")
        await asyncio.sleep(1.1)
        for s in sessions:
            await s.aclose()
        host.close()
        return said

    assert asyncio.run(go()) == {"kitchen": "The tea timer is done."}


def test_a_waiting_reply_goes_before_optional_work_whoever_asked_first():
    async def go():
        lane, order = Lane(), []

        async def job(name, priority):
            await lane.acquire(priority)
            order.append(name)
            await asyncio.sleep(0)
            lane.release()

        await lane.acquire()  # a job is running
        waiting = [asyncio.create_task(job(n, p)) for n, p in (
            ("prefill kitchen", Priority.OPTIONAL), ("odds office", Priority.OPTIONAL),
            ("reply office", Priority.REPLY), ("partial", Priority.NORMAL), ("reply kitchen", Priority.REPLY),
        )]
        await asyncio.sleep(0)
        lane.release()
        await asyncio.gather(*waiting)
        return order

    assert asyncio.run(go()) == ["reply office", "reply kitchen", "partial", "prefill kitchen", "odds office"]


def test_a_cancelled_waiter_does_not_hold_the_lane():
    async def go():
        lane = Lane()
        await lane.acquire()
        waiter = asyncio.create_task(lane.acquire(Priority.REPLY))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        lane.release()
        await asyncio.wait_for(lane.acquire(), 1)  # free again
        return lane.held

    assert asyncio.run(go())


class _VanishingDevice:
    """A room's audio that fails at once, as a device unplugged would."""

    description = "a device that went away"

    async def run(self, handler, speaker, clock, stop):
        from voiceagent.errors import AudioDeviceError

        raise AudioDeviceError("the audio device failed: unplugged")

    def close(self) -> None:
        pass


def test_a_room_whose_audio_fails_goes_on_without_sound_and_the_other_is_answered(tmp_path, caplog):
    cfg = _cfg(tmp_path)
    audio = np.concatenate([silence(0.3), tone(0.8), silence(3.0)])

    async def go():
        host = Host(share(cfg, _models(), workers=InlineWorker))
        events: list = []
        kitchen, office = (build_session(cfg, room, host.shared, daemon=True) for room in cfg.rooms())
        for s in (kitchen, office):
            s.bus.subscribe(events.append)
            s.conv.vad = EnergyVad()
        host.add(kitchen, _VanishingDevice())
        host.add(office, FileTransport(office.cfg, ArrayInput(audio), MemoryOutput(), endless=False, realtime=False))

        async def later():  # the kitchen keeps running on silence until the stop
            await asyncio.sleep(0.5)
            assert not kitchen._closed
            kitchen.conv.say("Still here.")  # its commands still work
            await asyncio.sleep(2.0)
            host.stop.set()

        await asyncio.gather(host.run(signals=False), later())
        return events

    events = asyncio.run(go())
    assert "kitchen: its audio failed" in caplog.text
    office = [(e.turn, e.reason) for e in events if e.session == "office" and e.type == "turn_end"]
    assert office == [(1, "answered")]
    kitchen = [(e.turn, e.reason) for e in events if e.session == "kitchen" and e.type == "turn_end"]
    assert kitchen == [(1, "answered")]  # the announcement, played to nowhere
