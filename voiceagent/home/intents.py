"""Local intent matching: Home Assistant's own sentences (home-assistant-intents),
matched with hassil against the names of this house. No model, no network:
~2-8 ms a transcript on 2 cores, so a device command needs no LLM at all.

Only the intents this assistant carries out are matched (``HANDLED``); anything
else goes to the LLM (or Home Assistant's conversation agent) as before.

Two passes, the way Home Assistant's default agent does it: first against the
names the house has (once more with a misheard name replaced by the name it is
close to, ``home.names``); if nothing matches, once more with any words allowed
where a name goes, for the device intents only. That second match is what lets "turn
on the garage lights" in a house without a garage be answered "Sorry, I am not
aware of any device called garage lights", and, with no house at all (not
connected yet, or not configured), be answered honestly instead of being handed
to a small LLM that may claim it did it.
"""

from __future__ import annotations

import difflib
import logging
import re
import time
from typing import Any

from hassil import Intents, recognize_best
from hassil.intents import SlotList, TextSlotList, WildcardSlotList
from home_assistant_intents import get_intents

from voiceagent.home.house import House
from voiceagent.home.names import NEAR, closest_name
from voiceagent.home.protocol import DEVICE_INTENTS, LOCAL_INTENTS, Command
from voiceagent.home.sentences import extend

logger = logging.getLogger(__name__)

HANDLED = DEVICE_INTENTS | LOCAL_INTENTS


class IntentMatcher:
    """Matches transcripts against the sentences of one language, for one house."""

    def __init__(self, language: str = "en", area: str | None = None) -> None:
        data = get_intents(language)
        if data is None:
            raise ValueError(f"home-assistant-intents has no sentences for language {language!r}")
        data = extend(data, language)
        data["intents"] = {k: v for k, v in data["intents"].items() if k in HANDLED}
        self.language = language
        self.intents = Intents.from_dict(data)
        self.responses: dict[str, dict[str, str]] = data.get("responses", {}).get("intents", {})
        self.errors: dict[str, str] = data.get("responses", {}).get("errors", {})
        self.area = area
        """The assistant's own area (``homeassistant.area``), as given."""
        self._lists: dict[str, SlotList] = {}
        self._wild: dict[str, SlotList] = {
            "name": WildcardSlotList("name"), "area": WildcardSlotList("area"), "floor": WildcardSlotList("floor"),
        }
        self._context: dict[str, Any] = {}
        self._names: list[str] = []
        self.update(House())
        self.match("turn on the light")  # hassil compiles its sentences on first use (~100 ms)

    def template(self, command: Command) -> str:
        """Home Assistant's response template for the sentence ``command`` matched."""
        templates = self.responses.get(command.intent, {})
        return templates.get(command.response) or templates.get("default", "")

    def update(self, house: House, exposed_only: bool = True) -> None:
        """Use the names of ``house`` from now on."""
        names = []
        for entity in house.controllable(exposed_only):
            context: dict[str, Any] = {"domain": entity.domain}
            area = house.areas.get(entity.area_id or "")
            if area is not None:
                context["area"] = {"value": area.id, "text": area.name}
            for name in (entity.name, *entity.aliases):
                names.append((name, entity.entity_id, context))
        areas = [(n, a.id) for a in house.areas.values() for n in (a.name, *a.aliases)]
        floors = [(n, f.id) for f in house.floors.values() for n in (f.name, *f.aliases)]
        self._lists = {
            "name": TextSlotList.from_tuples(names, allow_template=False, name="name"),
            "area": TextSlotList.from_tuples(areas, allow_template=False, name="area"),
            "floor": TextSlotList.from_tuples(floors, allow_template=False, name="floor"),
        }
        self._names = [n for n, *_ in names] + [n for n, _ in areas] + [n for n, _ in floors]
        here = house.area(self.area)
        if here is not None:
            self._context = {"area": {"value": here.id, "text": here.name}}
        else:  # not read yet (HA down): "turn on the lights" is still a device command, answered so
            self._context = {"area": {"value": self.area, "text": self.area}} if self.area else {}
            if self.area and house.areas:
                logger.warning(
                    "homeassistant.area %r is none of Home Assistant's areas (%s): \"turn on the lights\" "
                    "will be answered that there is no such area", self.area,
                    ", ".join(sorted(a.name for a in house.areas.values())),
                )

    def match(self, text: str) -> Command | None:
        """The command ``text`` is, or None (not a command: the LLM answers it)."""
        text = text.strip()
        if not text:
            return None
        started = time.perf_counter()
        result = self._recognize(text, self._lists)
        if result is None and (named := closest_name(text, self._names)) is not None:
            result = self._recognize(named, self._lists)
            # A name made of ordinary words counts only for a device, and not in "what is
            # the ... like?", which is a question about anything.
            if result is not None and (result.intent.name not in DEVICE_INTENTS or result.response == "one"):
                result = None
            elif result is not None:
                logger.debug("%r heard as %r", text, named)
        unknown: dict[str, str] = {}
        if result is None:
            # Words where a name goes that name nothing here: still a device command.
            found = self._with_unknown_names(text)
            if found is None:
                logger.debug("no intent in %r (%.1f ms)", text, (time.perf_counter() - started) * 1000)
                return None
            result, unknown = found
        slots: dict[str, Any] = {}
        spoken: dict[str, str] = {}
        for slot, entity in result.entities.items():
            value = entity.value
            if isinstance(value, dict):  # from the context: {"value": id, "text": name}
                spoken[slot] = str(value.get("text") or "")
                value = value.get("value")
            else:
                spoken[slot] = str(entity.text or value).strip()
            slots[slot] = value
        command = Command(result.intent.name, text, slots, spoken, unknown, result.response or "default")
        logger.debug("intent %s %s in %r (%.1f ms)", command.intent, slots, text, (time.perf_counter() - started) * 1000)
        return command

    def _with_unknown_names(self, text: str) -> tuple[Any, dict[str, str]] | None:
        """The device command ``text`` is with any words where a name goes, and
        those that name nothing here (``{slot: words}``); None if it is none."""
        result = self._recognize(text, {**self._lists, **self._wild})
        if result is None or result.intent.name not in DEVICE_INTENTS:
            return None
        said = _words(text)
        if said and said[0] in QUESTION_WORDS and result.intent.name not in QUESTION_INTENTS:
            return None  # "Is Makhilchian light on?" misheard is a question: never an action on a guess
        literal = list(said)
        for entity in result.entities.values():
            for word in _words(str(entity.text or "")):
                if word in literal:
                    literal.remove(word)
        if not DEVICE_WORDS & set(literal):
            return None  # "The answer is 42": HA's "{area} {brightness}" takes any words and a number
        unknown: dict[str, str] = {}
        known = {"name": self._lists["name"], "area": self._lists["area"], "floor": self._lists["floor"]}
        for slot, entity in result.entities.items():
            if slot in known and not _in_list(known[slot], entity.value):
                words = _ARTICLES.sub("", str(entity.text or entity.value)).strip()
                if not words:
                    return None  # "turn on all the lights": "the" is no area; the LLM answers
                near = _nearest(known[slot], words)
                if near is None:
                    unknown[slot] = words
                else:  # a misheard name ("the leaving room lamp"): the one it is close to
                    entity.value, entity.text = near
        if len(" ".join(unknown.values()).split()) > 4:
            return None  # a sentence, not a name: let the LLM answer it
        return result, unknown

    def _recognize(self, text: str, lists: dict[str, SlotList]) -> Any:
        return recognize_best(text, self.intents, slot_lists=lists, intent_context=self._context, language=self.language)


DEVICE_WORDS = frozenset(
    "turn switch set make change open close lock unlock activate dim brighten light lights lamp lamps lighting "
    "brightness bright brighter darker fan fans thermostat temperature heat heating cool warmer colder".split()
)
"""Words a command with a name unknown here must have outside that name, for it
to be taken for a device command at all."""

QUESTION_WORDS = frozenset("is are was were what which how who where when why does do".split())
QUESTION_INTENTS = frozenset({"HassGetState", "HassClimateGetTemperature"})

_WORD_RE = re.compile(r"[\w'%]+")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.casefold())


_ARTICLES = re.compile(r"^(?:(?:the|a|an|all|my|our|every|of)\b\s*)+", re.IGNORECASE)
"""Words a wildcard may take where a name goes that are no name."""


def _nearest(slot_list: SlotList, words: str) -> tuple[Any, str] | None:
    """``(value, name)`` of the list's name that ``words`` contain or are close to."""
    if not isinstance(slot_list, TextSlotList):
        return None
    said = " ".join(words.casefold().split())
    best: tuple[float, Any, str] | None = None
    for v in slot_list.values:
        name = getattr(v.text_in, "text", None)
        if not isinstance(name, str) or not name.strip():
            continue
        key = " ".join(name.casefold().split())
        if f" {key} " in f" {said} ":
            score = 1.0 + len(key) / 100  # contained: the longest name wins
        else:
            score = difflib.SequenceMatcher(None, said, key).ratio()
        if score >= NEAR and (best is None or score > best[0]):
            best = (score, v.value_out, name)
    return None if best is None else (best[1], best[2])


def _in_list(slot_list: SlotList, value: Any) -> bool:
    if not isinstance(slot_list, TextSlotList):
        return True
    if isinstance(value, dict):
        value = value.get("value")
    return any(v.value_out == value for v in slot_list.values)
