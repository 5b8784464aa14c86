"""The house as Home Assistant describes it: areas, floors, entities, their states.

Pure data, rebuilt from Home Assistant's registries on every connection and
whenever a registry changes; states are kept current from ``state_changed``
events. Names are what people say: the entity's own name (or its friendly
name, which includes the device's), and every alias, of the entity and of
its area.

Only entities exposed to Assist are controlled by voice unless the config says
otherwise (``homeassistant.exposed_only``), the same rule Home Assistant's
own voice assistant keeps: a user who hid the alarm from voice control has
hidden it from us too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Home Assistant's own defaults for entities nobody chose to expose or hide
# (homeassistant/components/homeassistant/exposed_entities.py, 2024.3).
DEFAULT_EXPOSED_DOMAINS = frozenset(
    "climate cover fan humidifier light lock scene script switch todo vacuum water_heater".split()
)
DEFAULT_EXPOSED_BINARY_SENSOR_CLASSES = frozenset(
    "door garage_door lock motion opening presence window".split()
)
DEFAULT_EXPOSED_SENSOR_CLASSES = frozenset(
    "aqi carbon_monoxide carbon_dioxide humidity pm10 pm25 temperature volatile_organic_compounds".split()
)
ASSISTANT = "conversation"
"""Home Assistant's name for its voice assistant in the exposure settings."""


@dataclass(frozen=True)
class Area:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    floor_id: str | None = None


@dataclass(frozen=True)
class Floor:
    id: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entity:
    entity_id: str
    name: str
    aliases: tuple[str, ...] = ()
    area_id: str | None = None
    """Its own area, or else its device's."""
    exposed: bool = True

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]


@dataclass
class House:
    areas: dict[str, Area] = field(default_factory=dict)
    floors: dict[str, Floor] = field(default_factory=dict)
    entities: dict[str, Entity] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    """entity_id -> Home Assistant's state object (``state``, ``attributes``)."""

    def area(self, ref: str | None) -> Area | None:
        """The area with this id, name or alias (case-insensitive)."""
        return _named(self.areas, ref)

    def floor(self, ref: str | None) -> Floor | None:
        return _named(self.floors, ref)

    def controllable(self, exposed_only: bool) -> list[Entity]:
        return [e for e in self.entities.values() if e.exposed or not exposed_only]

    def state_of(self, entity_id: str) -> str | None:
        state = self.states.get(entity_id)
        return None if state is None else state.get("state")

    def on_state_changed(self, data: dict[str, Any]) -> None:
        """A ``state_changed`` event's data."""
        entity_id = data.get("entity_id")
        if not isinstance(entity_id, str):
            return
        new = data.get("new_state")
        if isinstance(new, dict):
            self.states[entity_id] = new
        else:
            self.states.pop(entity_id, None)

    def names(self, exposed_only: bool) -> list[str]:
        """Every name of a controllable entity or area (to bias recognition)."""
        out: list[str] = []
        for entity in self.controllable(exposed_only):
            out += [entity.name, *entity.aliases]
        for area in self.areas.values():
            out += [area.name, *area.aliases]
        for floor in self.floors.values():
            out += [floor.name, *floor.aliases]
        return list(dict.fromkeys(n for n in out if n))


def _strings(values: Any) -> tuple[str, ...]:
    """The names in a list of aliases (anything else in it ignored)."""
    if not isinstance(values, (list, tuple, set)):
        return ()
    return tuple(v for v in values if isinstance(v, str) and v.strip())


def _named(places: dict[str, Any], ref: str | None) -> Any:
    """The area or floor of ``places`` with this id, name or alias (case-insensitive)."""
    if not ref:
        return None
    if ref in places:
        return places[ref]
    key = ref.casefold().strip()
    for place in places.values():
        if key == place.name.casefold() or key in (a.casefold() for a in place.aliases):
            return place
    return None


def _is_default_exposed(entity_id: str, entry: dict[str, Any] | None, state: dict[str, Any] | None) -> bool:
    if entry is not None and (entry.get("entity_category") or entry.get("hidden_by")):
        return False
    domain = entity_id.split(".", 1)[0]
    if domain in DEFAULT_EXPOSED_DOMAINS:
        return True
    device_class = None
    if entry is not None:
        device_class = entry.get("device_class") or entry.get("original_device_class")
    if device_class is None and state is not None:
        device_class = (state.get("attributes") or {}).get("device_class")
    if domain == "binary_sensor":
        return device_class in DEFAULT_EXPOSED_BINARY_SENSOR_CLASSES
    if domain == "sensor":
        return device_class in DEFAULT_EXPOSED_SENSOR_CLASSES
    return False


def build_house(
    areas: list[dict[str, Any]],
    floors: list[dict[str, Any]],
    devices: list[dict[str, Any]],
    entities: list[dict[str, Any]],
    states: list[dict[str, Any]],
    exposed: dict[str, dict[str, Any]],
) -> House:
    """A house from the answers to ``config/area_registry/list``, ``.../floor_registry/list``
    (absent before Home Assistant 2024.4: pass []), ``.../device_registry/list``,
    ``.../entity_registry/list``, ``get_states`` and ``homeassistant/expose_entity/list``."""
    house = House()
    # Entries without the fields we need are skipped, not fatal: a house is read
    # on every connection, and one odd entry must not keep the rest from working.
    for a in areas:
        if isinstance(a, dict) and isinstance(a.get("area_id"), str):
            house.areas[a["area_id"]] = Area(
                a["area_id"], str(a.get("name") or a["area_id"]), _strings(a.get("aliases")), a.get("floor_id")
            )
    for f in floors:
        if isinstance(f, dict) and isinstance(f.get("floor_id"), str):
            house.floors[f["floor_id"]] = Floor(f["floor_id"], str(f.get("name") or f["floor_id"]), _strings(f.get("aliases")))
    device_area = {d["id"]: d.get("area_id") for d in devices if isinstance(d, dict) and "id" in d}
    entries = {e["entity_id"]: e for e in entities if isinstance(e, dict) and "entity_id" in e}
    for state in states:
        if not isinstance(state, dict):
            continue
        entity_id = state.get("entity_id")
        if not isinstance(entity_id, str) or "." not in entity_id:
            continue
        house.states[entity_id] = state
        entry = entries.get(entity_id)
        if entry is not None and entry.get("disabled_by"):
            continue
        attributes = state.get("attributes") or {}
        name = (entry or {}).get("name") or attributes.get("friendly_name") or entity_id.split(".", 1)[1].replace("_", " ")
        area_id = (entry or {}).get("area_id") or device_area.get((entry or {}).get("device_id"))
        settings = (exposed.get(entity_id) or {})
        if ASSISTANT in settings:
            is_exposed = bool(settings[ASSISTANT])
        else:
            is_exposed = _is_default_exposed(entity_id, entry, state)
        house.entities[entity_id] = Entity(
            entity_id, str(name), _strings((entry or {}).get("aliases")), area_id, is_exposed
        )
    return house
