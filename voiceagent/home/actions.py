"""Device intents: which entities a command means, the service calls that carry it
out, and Home Assistant's words for what happened.

Planning (``plan``) is pure: from a command and the house, the targets, the
service calls and the response, or the error to speak. It is what speculation
may do before the turn commits. Carrying it out (``HomeControl.execute``) is
not, and happens once, after.

Targets follow Home Assistant's intent handlers: a name is one entity (in the
area, if one was said too); an area, a floor, a domain ("lights") and a device
class narrow down the exposed entities; "in here", or no area at all for
"turn on the lights", is this assistant's area (``homeassistant.area``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voiceagent.home.house import Entity, House
from voiceagent.home.protocol import Command
from voiceagent.home.responses import Query, StateView, render

# (domain, service) per domain for turning on and off, where it is not <domain>.turn_on/off.
_ON = {"cover": "open_cover", "lock": "lock", "valve": "open_valve", "vacuum": "start"}
_OFF = {"cover": "close_cover", "lock": "unlock", "valve": "close_valve", "vacuum": "return_to_base"}
SWITCHABLE = frozenset(
    "light switch fan input_boolean media_player climate humidifier cover lock valve scene script "
    "automation siren water_heater vacuum remote".split()
)
_NOT_OFF = frozenset({"scene"})
"""Domains that can only be turned on (activated)."""


@dataclass(frozen=True)
class ServiceCall:
    domain: str
    service: str
    entity_ids: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What a device command will do, decided before anything is done."""

    speech: str
    """What to say once the calls succeed (or, with no calls, what to say at all)."""
    calls: tuple[ServiceCall, ...] = ()
    targets: tuple[str, ...] = ()
    error: str | None = None
    """Why nothing will be done (an error key of Home Assistant's), or None."""


def _error(errors: dict[str, str], key: str, **values: Any) -> Plan:
    template = errors.get(key) or "Sorry, I couldn't do that"
    return Plan(render(template, **values), error=key)


def find_targets(command: Command, house: House, exposed_only: bool, errors: dict[str, str]) -> list[Entity] | Plan:
    """The entities the command means, or the error Plan if there are none."""
    slots = command.slots
    for slot, key in (("name", "no_entity"), ("area", "no_area"), ("floor", "no_floor")):
        if slot in command.unknown:
            return _error(errors, key, entity=command.unknown[slot], area=command.unknown[slot], floor=command.unknown[slot])
    candidates = house.controllable(exposed_only)
    area = house.areas.get(slots.get("area") or "")
    floor = house.floors.get(slots.get("floor") or "")
    # An area or floor the house has not (homeassistant.area misspelt, or the house
    # not read yet) narrows down to nothing, never to the whole house.
    for slot, key, found in (("area", "no_area", area), ("floor", "no_floor", floor)):
        if slots.get(slot) and found is None:
            said = command.spoken.get(slot) or str(slots[slot])
            return _error(errors, key, entity=said, area=said, floor=said)
    domain = slots.get("domain")
    if command.intent.startswith("HassClimate"):
        domain = "climate"
    if "name" in slots:
        candidates = [e for e in candidates if e.entity_id == slots["name"]]
    if area is not None:
        candidates = [e for e in candidates if e.area_id == area.id]
    if floor is not None:
        in_floor = {a.id for a in house.areas.values() if a.floor_id == floor.id}
        candidates = [e for e in candidates if e.area_id in in_floor]
    if domain:
        domains = set(domain) if isinstance(domain, (list, tuple)) else {domain}
        candidates = [e for e in candidates if e.domain in domains]
    if device_class := slots.get("device_class"):
        classes = set(device_class) if isinstance(device_class, (list, tuple)) else {device_class}
        candidates = [
            e for e in candidates
            if (house.states.get(e.entity_id, {}).get("attributes") or {}).get("device_class") in classes
        ]
    if candidates:
        return candidates
    what = (domain if isinstance(domain, str) else "device").replace("_", " ")
    if "name" in slots:
        return _error(errors, "no_entity", entity=command.spoken.get("name", slots["name"]))
    if area is not None:
        return _error(errors, "no_domain_in_area", domain=what, area=area.name)
    if floor is not None:
        return _error(errors, "no_domain_in_floor", domain=what, floor=floor.name)
    return _error(errors, "no_domain", domain=what)


def plan(command: Command, house: House, template: str, errors: dict[str, str], exposed_only: bool) -> Plan:
    """What ``command`` (a device intent) will do in ``house``; ``template`` is Home
    Assistant's response to its sentence (``IntentMatcher.template``)."""
    targets = find_targets(command, house, exposed_only, errors)
    if isinstance(targets, Plan):
        return targets
    views = {e.entity_id: StateView.of(e.entity_id, e.name, house.states.get(e.entity_id)) for e in targets}
    first = views[targets[0].entity_id]
    slots = command.said
    ids = tuple(e.entity_id for e in targets)
    intent = command.intent
    calls: list[ServiceCall] = []
    if intent in ("HassTurnOn", "HassTurnOff"):
        on = intent == "HassTurnOn"
        switchable = [e for e in targets if e.domain in SWITCHABLE and (on or e.domain not in _NOT_OFF)]
        if not switchable:
            return _error(errors, "feature_not_supported")
        by_domain: dict[str, list[str]] = {}
        for e in switchable:
            by_domain.setdefault(e.domain, []).append(e.entity_id)
        for domain, entity_ids in by_domain.items():
            service = (_ON if on else _OFF).get(domain, "turn_on" if on else "turn_off")
            calls.append(ServiceCall(domain, service, tuple(entity_ids)))
        ids = tuple(e.entity_id for e in switchable)
    elif intent == "HassLightSet":
        lights = tuple(e.entity_id for e in targets if e.domain == "light")
        if not lights:
            return _error(errors, "feature_not_supported")
        data: dict[str, Any] = {}
        if "brightness" in command.slots:
            data["brightness_pct"] = int(command.slots["brightness"])
        if "color" in command.slots:
            data["color_name"] = str(command.slots["color"])
        if "temperature" in command.slots:
            data["color_temp_kelvin"] = int(command.slots["temperature"])
        calls.append(ServiceCall("light", "turn_on", lights, data))
        ids = lights
    elif intent == "HassClimateSetTemperature":
        calls.append(ServiceCall("climate", "set_temperature", ids, {"temperature": command.slots["temperature"]}))
    elif intent == "HassGetState":
        wanted = command.slots.get("state")
        matched = [v for v in views.values() if wanted is None or v.state == wanted]
        unmatched = [v for v in views.values() if v not in matched]
        return Plan(render(template, slots, first, Query(matched, unmatched), views), targets=ids)
    elif intent == "HassClimateGetTemperature":
        return Plan(render(template, slots, first, states=views), targets=ids)
    return Plan(render(template, slots, first, states=views), tuple(calls), ids)
