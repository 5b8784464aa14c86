"""Home Assistant integration over MQTT (discovery, states, commands)."""

from __future__ import annotations

from voiceagent.mqtt.bridge import MqttBridge
from voiceagent.mqtt.commands import Controls
from voiceagent.mqtt.discovery import (
    ASSISTANT_STATES,
    STATE_ENTITIES,
    Topics,
    discovery_messages,
    truncate_state,
)

__all__ = [
    "ASSISTANT_STATES",
    "STATE_ENTITIES",
    "Controls",
    "MqttBridge",
    "Topics",
    "discovery_messages",
    "truncate_state",
]
