"""What the dialogue asks of the house: is this transcript a command, what will it
say, and (once the turn has committed, once) carry it out.

It never claims what it did not do: a device command with no connection is
answered "I can't reach Home Assistant", one that Home Assistant refuses is
answered with its reason, and only a service call Home Assistant accepted is
answered with its success response.
"""

from __future__ import annotations

import datetime as dt
import logging

from voiceagent.home.actions import Plan, plan
from voiceagent.home.client import HomeCommandError, HomeUnavailable
from voiceagent.home.connection import HomeConnection
from voiceagent.home.intents import IntentMatcher
from voiceagent.home.protocol import Command, Outcome
from voiceagent.home.responses import render
from voiceagent.home.timers import Timers, spoken_length

logger = logging.getLogger(__name__)

UNREACHABLE = "I can't reach Home Assistant."
NOT_CONNECTED = "I'm not connected to Home Assistant, so I can't control devices."


class HomeControl:
    def __init__(
        self,
        matcher: IntentMatcher,
        timers: Timers,
        connection: HomeConnection | None = None,
        exposed_only: bool = True,
        agent: str | None = None,
    ) -> None:
        self.matcher = matcher
        self.timers = timers
        self.connection = connection
        """None: no ``homeassistant.url`` (timers and the clock still work)."""
        self.exposed_only = exposed_only
        self.agent = agent
        """Home Assistant's conversation agent for what no intent matches (None: the LLM)."""
        self._conversation_id: str | None = None
        if connection is not None:
            connection.on_house(lambda house: matcher.update(house, exposed_only))

    def match(self, text: str) -> Command | None:
        """Is ``text`` a command? Pure and fast (a few ms): speculation may call it."""
        return self.matcher.match(text)

    @property
    def converses(self) -> bool:
        return self.agent is not None and self.connection is not None

    async def converse(self, text: str) -> Outcome:
        """Ask Home Assistant's conversation agent (``conversation/process``), keeping
        its conversation id so that it can follow up ("and the kitchen?")."""
        assert self.connection is not None
        fields: dict[str, object] = {"text": text, "language": self.matcher.language}
        if self.agent:
            fields["agent_id"] = self.agent
        if self._conversation_id:
            fields["conversation_id"] = self._conversation_id
        try:
            result = await self.connection.client.command("conversation/process", **fields)
        except HomeUnavailable as err:
            logger.warning("conversation agent: %s", err)
            return Outcome(UNREACHABLE, "unavailable", error="unavailable")
        except HomeCommandError as err:
            return Outcome(f"Sorry, Home Assistant could not answer: {err.message}.", "failed", error=err.ha_code)
        result_of_call = result if isinstance(result, dict) else {}
        self._conversation_id = result_of_call.get("conversation_id") or self._conversation_id
        response = result_of_call.get("response") or {}
        speech = ((response.get("speech") or {}).get("plain") or {}).get("speech") or ""
        kind = response.get("response_type")
        data = response.get("data") or {}
        targets = tuple(
            t["id"] for t in data.get("success", []) if isinstance(t, dict) and t.get("type") == "entity" and "id" in t
        )
        result = {"error": "failed", "action_done": "done"}.get(kind, "answered")
        return Outcome(
            speech, result, targets, data.get("code") if kind == "error" else None,
            follow_up=bool(result_of_call.get("continue_conversation")),
        )

    def cannot_act(self) -> str:
        if self.connection is None:
            return "Sorry, I can't do that: I'm not connected to any devices."
        return "Sorry, I didn't do that: I can only control the devices Home Assistant shares with me."

    def names(self) -> list[str]:
        """The house's names, to bias recognition toward them."""
        if self.connection is None:
            return []
        return self.connection.house.names(self.exposed_only)

    def expected(self, command: Command) -> str | None:
        """What ``execute`` will most likely say, known now (to synthesize it early);
        None where it depends on what happens."""
        if command.needs_house:
            if self.connection is None:
                return NOT_CONNECTED
            if not self.connection.available:
                return UNREACHABLE
            return self._plan(command).speech
        if command.intent in ("HassStartTimer", "HassNevermind", "HassGetCurrentTime", "HassGetCurrentDate"):
            return self._local(command, dry_run=True).speech
        return None

    async def execute(self, command: Command) -> Outcome:
        """Carry ``command`` out (call this once, after the turn committed)."""
        if not command.needs_house:
            return self._local(command, dry_run=False)
        if self.connection is None:
            return Outcome(NOT_CONNECTED, "unavailable", error="not_configured")
        if not self.connection.available:
            return Outcome(UNREACHABLE, "unavailable", error="unavailable")
        p = self._plan(command)
        if p.error is not None:
            return Outcome(p.speech, "not_found", p.targets, p.error)
        if not p.calls:
            return Outcome(p.speech, "answered", p.targets)
        try:
            for call in p.calls:
                await self.connection.call_service(
                    call.domain, call.service, call.data or None, {"entity_id": list(call.entity_ids)}
                )
        except HomeUnavailable as err:
            logger.warning("%s: %s", command.intent, err)
            return Outcome(UNREACHABLE, "unavailable", p.targets, "unavailable")
        except HomeCommandError as err:
            logger.warning("%s %s: Home Assistant refused: %s", command.intent, p.targets, err)
            return Outcome(f"Sorry, Home Assistant could not do that: {err.message}.", "failed", p.targets, err.ha_code)
        return Outcome(p.speech, "done", p.targets)

    def _plan(self, command: Command) -> Plan:
        assert self.connection is not None
        m = self.matcher
        return plan(command, self.connection.house, m.template(command), m.errors, self.exposed_only)

    def _local(self, command: Command, dry_run: bool) -> Outcome:
        """Timers, the time and date, never mind."""
        intent, slots, spoken = command.intent, command.slots, command.said
        template = self.matcher.template(command)
        area = self.matcher.area
        if intent == "HassNevermind":
            return Outcome("", "done")
        if intent in ("HassGetCurrentTime", "HassGetCurrentDate"):
            now = dt.datetime.now().astimezone()
            return Outcome(render(template, {"time": now.time(), "date": now.date()}), "answered")
        if intent == "HassStartTimer":
            seconds = int(_number(slots.get("hours")) * 3600 + _number(slots.get("minutes")) * 60 + _number(slots.get("seconds")))
            if not dry_run:
                try:
                    self.timers.start(seconds, slots.get("name"), area)
                except ValueError as err:
                    return Outcome(f"Sorry, I can only set {err}.", "failed", error="timer")
            return Outcome(render(template, spoken) or f"Timer set for {spoken_length(seconds)}", "done")
        if intent == "HassCancelTimer":
            timer = self.timers.cancel(slots.get("name"), area)
            if timer is None:
                return Outcome(render(self.matcher.errors.get("timer_not_found", "")), "not_found", error="timer_not_found")
            return Outcome(render(template, spoken), "done")
        if intent == "HassCancelAllTimers":
            return Outcome(render(template, {**spoken, "canceled": self.timers.cancel_all()}), "done")
        if intent == "HassTimerStatus":
            return Outcome(render(template, {**spoken, "timers": self.timers.describe()}), "answered")
        return Outcome("", "failed", error="unhandled")


def _number(value: object) -> float:
    if value in (None, ""):
        return 0.0
    if value in ("half", "1/2"):
        return 0.5
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
