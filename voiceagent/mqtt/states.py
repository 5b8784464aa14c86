"""The assistant's states as Home Assistant takes them: which values are valid,
and which messages carry one.

The outgoing half of :mod:`voiceagent.mqtt.commands`. A value Home Assistant
would reject (a ``state`` not among its enum options, a ``latency`` that is not
a number, a ``mute`` that is not ON/OFF) is refused here with ValueError, at the
caller that made it, instead of reaching the dashboard. Free text (the
transcript and the reply) goes out truncated on the state topic, which Home
Assistant limits to ``MAX_STATE_CHARS``, and in full as an attribute. Pure:
:mod:`voiceagent.mqtt.bridge` remembers and publishes what this checks and builds.
"""

from __future__ import annotations

import json

from voiceagent.mqtt.discovery import (
    ASSISTANT_STATES,
    OFF,
    ON,
    STATE_ENTITIES,
    TEXT_ENTITIES,
    Topics,
    truncate_state,
)


def check_state(entity: str, value: str) -> None:
    """Raise ValueError unless ``value`` is one Home Assistant takes for ``entity``."""
    if entity not in STATE_ENTITIES:
        raise ValueError(f"unknown MQTT state entity {entity!r} (not in {STATE_ENTITIES})")
    if entity == "state" and value not in ASSISTANT_STATES:
        raise ValueError(f"assistant state {value!r} is not one of {ASSISTANT_STATES}")
    if entity == "latency":
        float(value)
    if entity == "mute" and value not in (ON, OFF):
        raise ValueError(f"mute state must be {ON} or {OFF}, got {value!r}")


def state_messages(topics: Topics, entity: str, value: str) -> list[tuple[str, str]]:
    """(topic, payload) for the retained messages that publish ``value``, in order."""
    messages = []
    if entity in TEXT_ENTITIES:
        messages.append((topics.attributes(entity), json.dumps({"text": value}, ensure_ascii=False)))
        value = truncate_state(value)
    messages.append((topics.state(entity), value))
    return messages
