"""One room's side of the house: its local intents (in its area), its timers and
its Home Assistant conversation, over the process's one connection; tied to the
room's conversation (a timer set in the kitchen rings in the kitchen) and, in
the daemon, to the room's MQTT device (the timer sensor, the timer event)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from voiceagent.config import Config
from voiceagent.home.house import House
from voiceagent.home.connection import HomeConnection
from voiceagent.home.setup import build_home
from voiceagent.home.timers import Timer, done_speech
from voiceagent.mqtt.discovery import NO_TIMER
from voiceagent.stages.protocols import Transcriber

if TYPE_CHECKING:
    from voiceagent.dialogue.conversation import Conversation
    from voiceagent.mqtt import MqttBridge


class HomeTies:
    """``control``: None with ``homeassistant.intents: false``. Run
    ``control.connection`` (when there is one) beside the conversation."""

    def __init__(self, cfg: Config, bridge: MqttBridge | None, connection: HomeConnection | None) -> None:
        self.cfg = cfg
        """The room's view of the config (its area)."""
        self.bridge = bridge
        self.conv: Conversation | None = None
        self.control = build_home(cfg, connection, self._timer_finished, self._timers_changed)

    def attach(self, conv: Conversation, transcriber: Transcriber) -> None:
        """Say this room's timers in ``conv``; bias this room's ``transcriber``
        (its own view of the shared one) toward the names of the house."""
        self.conv = conv
        control = self.control
        set_hotwords = getattr(transcriber, "set_hotwords", None)
        if control is None or control.connection is None or set_hotwords is None:
            return
        if not self.cfg.homeassistant.bias_asr:
            return

        def on_house(_house: House) -> None:  # after the matcher has been rebuilt with it
            set_hotwords(control.names())

        control.connection.on_house(on_house)

    def close(self) -> None:
        if self.control is not None:
            self.control.timers.close()

    def _timer_finished(self, timer: Timer) -> None:
        if self.conv is not None:
            self.conv.say(done_speech(timer))
        if self.bridge is not None:
            self.bridge.publish_event("timer", {
                "event": "finished", "id": timer.id, "name": timer.name, "seconds": timer.seconds,
            })

    def _timers_changed(self, timers: list[Timer]) -> None:
        if self.bridge is None:
            return
        if not timers:
            self.bridge.publish_state("timer", NO_TIMER)
            return
        left = timers[0].ends_at - asyncio.get_running_loop().time()
        ends = datetime.now(timezone.utc) + timedelta(seconds=left)
        self.bridge.publish_state("timer", ends.isoformat(timespec="seconds"))
