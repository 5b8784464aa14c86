"""``build_session``: the one wiring of a conversation, for every command.

``run``, ``talk``, ``demo``, ``bench`` and each room of ``serve`` get their
conversation here, over the models and workers the process lends them
(``Shared``). What differs is asked for, not wired again: the daemon's parts
(wake word, MQTT device, Home Assistant's commands, the state, the conversation
log) come with ``daemon=True``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TextIO

from voiceagent import __version__
from voiceagent.audio.speaker import Speaker
from voiceagent.clock import TimelineClock
from voiceagent.config import Config, SatelliteConfig
from voiceagent.dialogue.conversation import Conversation
from voiceagent.events import EventBus, JsonlEventLog
from voiceagent.home.connection import HomeConnection
from voiceagent.home.protocol import Commands
from voiceagent.metrics import LatencyTracker
from voiceagent.mqtt.discovery import NO_TIMER
from voiceagent.rules.wake_gate import WakeGate
from voiceagent.session.controls import DaemonControls
from voiceagent.session.display import ConsoleDisplay
from voiceagent.session.house import HomeTies
from voiceagent.session.listener import Listener
from voiceagent.session.log import ConversationLog, TurnSummaries
from voiceagent.session.session import Session
from voiceagent.session.state import AssistantState, StateReporter
from voiceagent.stages.loading import Models
from voiceagent.stages.protocols import SpeechDetector
from voiceagent.stages.vad import SileroSpeech, SileroVad, WebRtcVad
from voiceagent.stages.workers import Workers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shared:
    """What the process lends every session: the models, one worker each, and the
    one connection to Home Assistant (None: none configured)."""

    models: Models
    workers: Workers
    home: HomeConnection | None = None
    version: str = __version__
    """The software version the MQTT devices report."""


def speech_detectors(cfg: Config) -> tuple[SpeechDetector, SileroVad | None]:
    """The listening path's detector and the barge-in gate's second stage: one
    Silero model serves both, run once per frame."""
    rate = cfg.audio.sample_rate
    confirms = cfg.barge_in.enabled and cfg.barge_in.second_stage == "silero"
    silero = SileroVad(rate) if confirms or cfg.vad.detector == "silero" else None
    second_stage = silero if confirms else None
    if silero is not None and cfg.vad.detector == "silero":
        return SileroSpeech(silero, cfg.vad.speech_on, cfg.vad.speech_off), second_stage
    return WebRtcVad(cfg.vad.aggressiveness, rate, cfg.vad.frame_ms), second_stage


def build_session(
    cfg: Config,
    room: SatelliteConfig,
    shared: Shared,
    *,
    display: TextIO | None = None,
    events: TextIO | None = None,
    bus: EventBus | None = None,
    daemon: bool = False,
    house: bool = True,
    several: bool = False,
    log: ConversationLog | None = None,
    commands: Commands | None = None,
) -> Session:
    """A conversation for ``room`` (its name is the session's), ready to run over a
    transport.

    ``cfg`` is the process's config: the room's view of it (``Config.for_room``)
    is taken here. ``display``: print the conversation there; ``events``: write
    every event as a JSON line there (one file may take every room's: each
    event carries its session); ``bus``: an event bus already made (with its own
    subscribers); ``daemon``: the wake word, the MQTT device, Home Assistant's
    commands, the state and the conversation log (``serve``); ``house``: local
    intents, timers and Home Assistant (``talk`` and ``serve``; ``run`` has
    them too unless the caller says no); ``several``: the process has more than
    one room (the console says which); ``log``: the room's conversation log,
    opened by the caller before the models loaded (a bad path fails at once);
    ``commands``: the house's commands to use instead of the room's own (benchmarks).
    """
    rcfg = cfg.for_room(room)
    rate = rcfg.audio.sample_rate
    bus = bus if bus is not None else EventBus(room.name)
    tracker = LatencyTracker()
    bus.subscribe(tracker)
    if display is not None:
        bus.subscribe(ConsoleDisplay(display, room.name if several else None))
    if events is not None:
        bus.subscribe(JsonlEventLog(events))

    summaries = TurnSummaries([log] if log is not None else [])
    if daemon:
        bus.subscribe(summaries)

    detector = gate = None
    if daemon and rcfg.wake.model != "none":
        from voiceagent.stages.wake import WakeWordDetector

        detector = WakeWordDetector(rcfg.wake.model, rcfg.wake.threshold, rate)
        detector.warm_up()
        gate = WakeGate(rcfg.wake.gate_settings())
        bus.subscribe(gate.on_event)  # before the state, which asks it

    bridge = None
    if daemon and rcfg.mqtt.enabled:
        from voiceagent.mqtt import MqttBridge

        bridge = MqttBridge(rcfg, None, shared.version)  # its controls need the listener
    home = HomeTies(rcfg, bridge, shared.home) if house else None

    models = shared.models.for_session(room.name)
    clock = TimelineClock()
    speaker = Speaker(rate, rcfg.audio.output_gain_db)
    vad, second_stage = speech_detectors(rcfg)
    conv = Conversation(
        rcfg, vad, models.transcriber, models.chat,
        models.synthesizer, speaker, bus, clock, shared.workers,
        second_stage=second_stage, end_model=models.end_model, gate=gate,
        prompt_cache=models.prompt_cache, end_of_message=models.end_of_message,
        commands=commands if commands is not None else home.control if home is not None else None,
    )
    listener = Listener(conv, bus, rate, detector, gate, worker=shared.workers.wake if detector else None)
    if home is not None:
        home.attach(conv, models.transcriber)

    controls = reporter = None
    if bridge is not None:
        from voiceagent.session.publisher import StatePublisher

        controls = DaemonControls(listener)  # bounds what a flood of commands can start
        bus.subscribe(controls.on_event)
        bridge.set_controls(controls)
        publisher = StatePublisher(bridge)
        summaries.sinks.append(publisher)
        bus.subscribe(publisher.on_event)
        bridge.publish_state("mute", "OFF")
        bridge.publish_state("timer", NO_TIMER)
    if daemon:
        reporter = StateReporter(
            lambda state: bridge.publish_state("state", state.value) if bridge is not None else None, gate,
        )
        bus.subscribe(reporter)
        if bridge is not None:
            bridge.publish_state("state", AssistantState.IDLE.value)
    return Session(
        room.name, rcfg, bus, clock, speaker, conv, listener, tracker, home=home, gate=gate, bridge=bridge,
        controls=controls, reporter=reporter, log=log, keep_alive=daemon,
    )
