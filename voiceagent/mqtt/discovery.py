"""Home Assistant MQTT discovery: the entities, their topics and config payloads.

Pure data, no I/O: :mod:`voiceagent.mqtt.bridge` publishes what this module
builds. Home Assistant creates one device ("Voice Agent") with these entities:

=============  ======  ==============================================
object id      kind    what
=============  ======  ==============================================
``state``      sensor  idle / listening / thinking / speaking
``transcript`` sensor  the last thing the user said
``reply``      sensor  the last thing the assistant said
``latency``    sensor  the last voice-to-voice latency, milliseconds
``mute``       switch  microphone muted (ON) or listening (OFF)
``say``        text    speaks the text sent to it
``ask``        text    asks the assistant and speaks the answer
``stop``       button  stops the current reply
``timer``      sensor  when the next timer rings (a timestamp; unknown: none)
=============  ======  ==============================================

Controls carry ``entity_category: config`` and the latency ``diagnostic``: Home
Assistant's Assist does not expose categorized entities, so nobody can mute us
by voice through Home Assistant by accident.

Topics (``<node>`` is :meth:`MqttConfig.node`):

- config: ``<discovery_prefix>/<component>/<node>/<object_id>/config`` (retained)
- availability: ``<base_topic>/<node>/availability`` (``online`` / ``offline``)
- state: ``<base_topic>/<node>/<object_id>/state``
- command: ``<base_topic>/<node>/<object_id>/set``
- attributes (transcript and reply: the full text as JSON):
  ``<base_topic>/<node>/<object_id>/attributes``
- events, not retained, JSON: ``<base_topic>/<node>/event/intent`` (a command of
  the house and what came of it), ``<base_topic>/<node>/event/timer`` (a timer rang)
- Home Assistant's own birth/will: ``<discovery_prefix>/status``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voiceagent.config import MqttConfig

ONLINE = "online"
OFFLINE = "offline"
ON = "ON"
OFF = "OFF"
PRESS = "PRESS"

MAX_STATE_CHARS = 255
"""Home Assistant rejects sensor states (and text values) longer than this."""

ELLIPSIS = "…"

ASSISTANT_STATES = ("idle", "listening", "thinking", "speaking")
"""The values of the ``state`` sensor (its enum options)."""

STATE_ENTITIES = ("state", "transcript", "reply", "latency", "mute", "timer")
"""Entities with a state topic, in the order their states are (re)published."""

COMMAND_ENTITIES = ("mute", "say", "ask", "stop")
"""Entities with a command topic."""

TEXT_ENTITIES = ("transcript", "reply")
"""Sensors holding free text: truncated on the state topic, full in the attributes."""


@dataclass(frozen=True)
class Entity:
    object_id: str
    component: str
    """Home Assistant platform: sensor, switch, text or button."""
    name: str
    """Entity name shown under the device (Home Assistant prefixes the device name)."""
    icon: str
    extra: tuple[tuple[str, Any], ...] = ()
    """Platform-specific config keys."""
    category: str | None = None
    """Home Assistant's ``entity_category``: ``config`` for controls, ``diagnostic``
    for figures. Home Assistant's own Assist does not expose entities with a
    category, so "turn on voice agent mute" said to it cannot mute us."""


_TEXT_INPUT = (("mode", "text"), ("min", 1), ("max", MAX_STATE_CHARS))

ENTITIES: tuple[Entity, ...] = (
    Entity(
        "state",
        "sensor",
        "State",
        "mdi:account-voice",
        (("device_class", "enum"), ("options", list(ASSISTANT_STATES))),
    ),
    Entity("transcript", "sensor", "Last transcript", "mdi:microphone-message"),
    Entity("reply", "sensor", "Last reply", "mdi:message-reply-text"),
    Entity(
        "latency",
        "sensor",
        "Latency",
        "mdi:timer-outline",
        (
            ("device_class", "duration"),
            ("unit_of_measurement", "ms"),
            ("state_class", "measurement"),
            ("suggested_display_precision", 0),
        ),
        "diagnostic",
    ),
    Entity(
        "mute",
        "switch",
        "Mute",
        "mdi:microphone-off",
        (("payload_on", ON), ("payload_off", OFF), ("state_on", ON), ("state_off", OFF)),
        "config",
    ),
    Entity("say", "text", "Say", "mdi:bullhorn", _TEXT_INPUT, "config"),
    Entity("ask", "text", "Ask", "mdi:chat-question", _TEXT_INPUT, "config"),
    Entity("stop", "button", "Stop", "mdi:stop-circle", (("payload_press", PRESS),), "config"),
    Entity("timer", "sensor", "Next timer", "mdi:timer-sand", (("device_class", "timestamp"),)),
)

NO_TIMER = "None"
"""The ``timer`` state with no timer running (Home Assistant shows it as unknown)."""

ENTITY_BY_ID = {e.object_id: e for e in ENTITIES}


@dataclass(frozen=True)
class Topics:
    """The MQTT topics of one voiceagent device."""

    discovery_prefix: str
    base: str
    """``<base_topic>/<node_id>``: the prefix of every state and command topic."""
    node: str

    @classmethod
    def from_config(cls, cfg: MqttConfig) -> Topics:
        node = cfg.node()
        return cls(cfg.discovery_prefix, f"{cfg.base_topic}/{node}", node)

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def ha_status(self) -> str:
        """Home Assistant publishes ``online`` here when it (re)starts."""
        return f"{self.discovery_prefix}/status"

    def state(self, entity: str) -> str:
        return f"{self.base}/{entity}/state"

    def command(self, entity: str) -> str:
        return f"{self.base}/{entity}/set"

    def attributes(self, entity: str) -> str:
        return f"{self.base}/{entity}/attributes"

    def event(self, name: str) -> str:
        return f"{self.base}/event/{name}"

    def config(self, entity: str) -> str:
        component = ENTITY_BY_ID[entity].component
        return f"{self.discovery_prefix}/{component}/{self.node}/{entity}/config"


def truncate_state(text: str, limit: int = MAX_STATE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis if cut.

    Home Assistant drops a sensor state longer than 255 characters with an error
    in its log, so a long transcript or reply would leave the sensor stale.
    """
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def discovery_messages(
    cfg: MqttConfig, sw_version: str, suggested_area: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """``(config topic, payload)`` for every entity, to publish retained.

    ``suggested_area``: the room the device is put in when Home Assistant first
    sees it (``homeassistant.area``); the user can move it, and HA keeps that.
    """
    topics = Topics.from_config(cfg)
    device: dict[str, Any] = {
        "identifiers": [f"voiceagent_{topics.node}"],
        "name": cfg.device_name,
        "manufacturer": "voiceagent",
        "model": "voiceagent",
        "sw_version": sw_version,
    }
    if suggested_area:
        device["suggested_area"] = suggested_area
    messages = []
    for entity in ENTITIES:
        oid = entity.object_id
        payload: dict[str, Any] = {
            "name": entity.name,
            "unique_id": f"{topics.node}_{oid}",
            # object_id for Home Assistant before 2025.10, default_entity_id after
            # (object_id is deprecated there); each version ignores the other key.
            "object_id": f"{topics.node}_{oid}",
            "default_entity_id": f"{entity.component}.{topics.node}_{oid}",
            "icon": entity.icon,
            "availability_topic": topics.availability,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device,
            "origin": {"name": "voiceagent", "sw_version": sw_version},
        }
        if oid in STATE_ENTITIES:
            payload["state_topic"] = topics.state(oid)
        if oid in COMMAND_ENTITIES:
            payload["command_topic"] = topics.command(oid)
            payload["qos"] = 1
        if oid in TEXT_ENTITIES:
            payload["json_attributes_topic"] = topics.attributes(oid)
        if entity.category is not None:
            payload["entity_category"] = entity.category
        payload.update(entity.extra)
        messages.append((topics.config(oid), payload))
    return messages
