"""The live connection to one Home Assistant: the client, and the house it describes.

On each connection the registries are read (areas, floors, devices, entities,
exposure, states: ~20 ms for a small house over loopback), then kept current:
``state_changed`` events update states as they happen, and a change to a
registry (an area renamed, an entity moved) reads the registries again, once,
half a second after the last such change.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from voiceagent.home.client import ClientSettings, HomeAssistantClient, HomeCommandError, HomeUnavailable
from voiceagent.home.house import House, build_house

logger = logging.getLogger(__name__)

RELOAD_DELAY_S = 0.5
REGISTRY_EVENTS = (
    "area_registry_updated",
    "floor_registry_updated",
    "device_registry_updated",
    "entity_registry_updated",
)


class HomeConnection:
    def __init__(self, settings: ClientSettings, on_house: Callable[[House], None] | None = None) -> None:
        self.client = HomeAssistantClient(settings, on_connect=self._load)
        self.house = House()
        """The house as last read (empty until the first connection; kept while away,
        so names are still recognized and the answer is "I can't reach it")."""
        self.house_listeners: list[Callable[[House], None]] = [on_house] if on_house is not None else []
        """Called with each newly read house: every session's intent matcher and
        ASR bias (one connection serves every room of the process)."""
        self._reload: asyncio.TimerHandle | None = None
        self._reading: asyncio.Task[None] | None = None
        """The registries being read again (awaited when the connection stops)."""
        self.client.subscribe("state_changed", self._state_changed)
        for event in REGISTRY_EVENTS:
            self.client.subscribe(event, self._registry_changed)

    def on_house(self, listener: Callable[[House], None]) -> None:
        """Call ``listener`` with each newly read house (at once if one was read)."""
        self.house_listeners.append(listener)
        if self.house.areas or self.house.entities:
            listener(self.house)

    @property
    def available(self) -> bool:
        return self.client.connected

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.client.run(stop)
        finally:
            if self._reload is not None:
                self._reload.cancel()
            if self._reading is not None:
                self._reading.cancel()
                await asyncio.gather(self._reading, return_exceptions=True)

    async def call_service(
        self, domain: str, service: str, data: dict[str, Any] | None = None, target: dict[str, Any] | None = None
    ) -> Any:
        fields: dict[str, Any] = {"domain": domain, "service": service}
        if data:
            fields["service_data"] = data
        if target:
            fields["target"] = target
        return await self.client.command("call_service", **fields)

    async def _load(self) -> None:
        command = self.client.command
        areas = await command("config/area_registry/list")
        try:
            floors = await command("config/floor_registry/list")
        except HomeCommandError:  # before Home Assistant 2024.4: no floors
            floors = []
        devices = await command("config/device_registry/list")
        entities = await command("config/entity_registry/list")
        try:
            exposed = (await command("homeassistant/expose_entity/list")).get("exposed_entities", {})
        except HomeCommandError as err:  # a non-admin token may not read it
            logger.warning("cannot read which entities are exposed to Assist (%s); using HA's defaults", err)
            exposed = {}
        states = await command("get_states")
        self.house = build_house(areas, floors, devices, entities, states, exposed)
        logger.info(
            "Home Assistant: %d areas, %d entities (%d exposed to voice)",
            len(self.house.areas), len(self.house.entities),
            sum(e.exposed for e in self.house.entities.values()),
        )
        for listener in self.house_listeners:
            listener(self.house)

    def _state_changed(self, event: dict[str, Any]) -> None:
        data = event.get("data")
        if isinstance(data, dict):
            self.house.on_state_changed(data)

    def _registry_changed(self, event: dict[str, Any]) -> None:
        if self._reload is not None:
            self._reload.cancel()
        self._reload = asyncio.get_running_loop().call_later(RELOAD_DELAY_S, self._read_again)

    def _read_again(self) -> None:
        self._reload = None
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._reload_now())

    async def _reload_now(self) -> None:
        try:
            await self._load()
        except HomeUnavailable as err:  # the reconnect reads it again anyway
            logger.debug("re-reading the registries failed: %s", err)
        except HomeCommandError as err:
            logger.warning("re-reading Home Assistant's registries failed: %s", err)
        except Exception:  # a registry in a shape we did not expect: keep the house we have
            logger.exception("re-reading Home Assistant's registries failed")
