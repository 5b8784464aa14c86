"""``Session``: one conversation with one room or user, and how it runs.

A session owns everything of one conversation: its dialogue, speaker, clock and
event bus, its listener (mute, wake word), its Home Assistant commands and
timers, its state, its conversation log and its MQTT device. The process lends
it the models and their workers (``session.build.Shared``). It runs over one
transport (files, sound devices, later a browser or a satellite) until the
process stops it, and a failure of its audio is its own: logged, and the room
goes on with silence (Home Assistant's commands still work) while the other
rooms are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from voiceagent.aio import race
from voiceagent.audio.speaker import Speaker
from voiceagent.clock import TimelineClock
from voiceagent.config import Config
from voiceagent.dialogue.conversation import Conversation
from voiceagent.errors import VoiceAgentError
from voiceagent.events import EventBus
from voiceagent.metrics import LatencyTracker
from voiceagent.mqtt import MqttBridge
from voiceagent.rules.wake_gate import WakeGate
from voiceagent.session.controls import DaemonControls
from voiceagent.session.house import HomeTies
from voiceagent.session.listener import Listener
from voiceagent.session.log import ConversationLog
from voiceagent.session.state import StateReporter
from voiceagent.transports.base import Transport, block_samples
from voiceagent.transports.paced import silent_driver

logger = logging.getLogger(__name__)

TICK_S = 0.5
"""Seconds between checks of time-based state (the wake word's listening window)."""
BRIDGE_STOP_S = 1.5
"""Seconds the room's MQTT device has, after the stop, to say offline: a broker
that does not answer cannot hold the shutdown."""


@dataclass(eq=False)
class Session:
    name: str
    cfg: Config
    """The room's view of the config (``Config.for_room``)."""
    bus: EventBus
    clock: TimelineClock
    speaker: Speaker
    conv: Conversation
    listener: Listener
    tracker: LatencyTracker
    home: HomeTies | None = None
    gate: WakeGate | None = None
    bridge: MqttBridge | None = None
    controls: DaemonControls | None = None
    reporter: StateReporter | None = None
    log: ConversationLog | None = None
    keep_alive: bool = False
    """The daemon's rooms: a failed input leaves the room running on silence
    (its device, timers and commands still work) instead of ending the run."""
    _closed: bool = field(default=False, repr=False)

    @property
    def idle(self) -> bool:
        return self.conv.idle

    async def run(self, transport: Transport, stop: asyncio.Event) -> float:
        """Run the room over ``transport`` until ``stop`` (or, for a finite input, until
        it has been answered); then close the conversation. Returns seconds run."""
        tick = asyncio.ensure_future(self._tick(stop))
        bridge = asyncio.ensure_future(self.bridge.run(stop)) if self.bridge is not None else None
        try:
            return await self._run_audio(transport, stop)
        finally:
            tick.cancel()
            await self.aclose()
            if bridge is not None:
                if not stop.is_set():
                    bridge.cancel()  # drops the connection: the broker publishes the will
                # The bridge publishes offline and disconnects on stop, within a bound.
                with contextlib.suppress(TimeoutError):
                    await race(asyncio.gather(bridge, return_exceptions=True), timeout=BRIDGE_STOP_S)
            await asyncio.gather(tick, return_exceptions=True)

    async def _run_audio(self, transport: Transport, stop: asyncio.Event) -> float:
        try:
            return await transport.run(self.listener, self.speaker, self.clock, stop)
        except (VoiceAgentError, OSError) as err:
            if not self.keep_alive:
                raise
            logger.error("%s: its audio failed (%s); it goes on without sound until stopped", self.name, err)
            self.listener.stop_replies()
        # The room keeps its MQTT device and timers: on silence, output to nowhere.
        n = block_samples(self.cfg)
        driver = silent_driver(
            self.speaker, self.clock, n, int(round(self.clock.now() * self.cfg.audio.sample_rate / n))
        )
        return await driver.run(self.listener, stop=stop)

    async def _tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            if self.reporter is not None:
                self.reporter.tick(self.clock.now())

    async def aclose(self) -> None:
        """Stop what this room is doing (the reply that plays ends, logged as
        "shutdown") and release its parts; the shared models stay."""
        if self._closed:
            return
        self._closed = True
        if self.controls is not None:
            self.controls.close()  # no waiting announcement starts during the shutdown
        if self.home is not None:
            self.home.close()
        await self.listener.aclose()
        await self.conv.aclose()
        # The conversation log is closed by whoever opened it (before the models loaded).
