"""A real Home Assistant for tests, on a free loopback port.

Usage in a test module (the ``home_assistant`` and ``home_assistant_factory``
fixtures are registered for every test module by tests/conftest.py)::

    from tests.support.home_assistant import HomeAssistant

    def test_something(home_assistant: HomeAssistant, tmp_path: Path) -> None:
        token_file = home_assistant.write_token_file(tmp_path / "ha-token")
        ... point the code under test at home_assistant.url with token_file ...
        home_assistant.wait_for_state("light.office_light", "on")

- :class:`HomeAssistant` runs ``hass`` from ``.venv-ha`` (``make ha-venv``:
  Home Assistant 2024.3.3 with every package its loaded integrations need, so it
  starts with ``--skip-pip`` and needs no network) with a generated config dir:
  ``http`` on 127.0.0.1, ``api``, ``config``, ``conversation`` and the helpers
  and ``template`` / ``generic_thermostat`` entities of a :class:`House` (no
  ``default_config``). The first :meth:`~HomeAssistant.start` onboards it (an
  admin user, no person), makes a long-lived access token, puts the areas and
  entities of the house in the registries and exposes the house's entities (only
  those) to Assist. It can be stopped (SIGTERM), killed (SIGKILL) and started
  again on the same port and config dir, where the same token still works.
- Lights are ``template`` lights whose state is an ``input_boolean`` (and, for a
  dimmable one, whose brightness is an ``input_number``); a thermostat is a
  ``generic_thermostat`` heating with an ``input_boolean`` and reading its
  temperature from an ``input_number``. The helpers are not exposed to Assist.
- :data:`DEFAULT_HOUSE`: ``light.office_light`` (area ``office``, dimmable),
  ``light.kitchen_light`` (``kitchen``, on/off only), ``light.living_room_lamp``
  (``living_room``, dimmable) and ``climate.living_room_thermostat``
  (``living_room``, heating, 20 °C measured, 21 °C wanted).
- :meth:`~HomeAssistant.connect_mqtt` adds the MQTT integration (discovery on,
  prefix ``homeassistant``); Home Assistant publishes ``homeassistant/status``
  ``online`` (not retained) some 2 s later, once it has subscribed to everything.
- The client side uses only httpx and the standard library (a minimal WebSocket
  client for Home Assistant's ``/api/websocket``), so it needs nothing beyond the
  project venv.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.broker import HOST, free_port

ROOT = Path(__file__).resolve().parents[2]
HA_VENV = ROOT / ".venv-ha"
HASS = HA_VENV / "bin" / "hass"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
USERNAME = "voiceagent"
PASSWORD = "voiceagent-test-password"
TOKEN_CLIENT_NAME = "voiceagent tests"


def slugify(name: str) -> str:
    """Home Assistant's slug of a name for the ASCII names used here ("Living Room" -> living_room)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# -- the house ---------------------------------------------------------------------


@dataclass(frozen=True)
class Light:
    """A template light named ``name`` in the area named ``area`` (None: no area)."""

    name: str
    area: str | None = None
    dimmable: bool = True

    @property
    def object_id(self) -> str:
        return slugify(self.name)

    @property
    def entity_id(self) -> str:
        return f"light.{self.object_id}"

    @property
    def power_entity(self) -> str:
        """The input_boolean that is the light's on/off state."""
        return f"input_boolean.{self.object_id}_power"

    @property
    def brightness_entity(self) -> str | None:
        """The input_number (1-255) that is a dimmable light's brightness."""
        return f"input_number.{self.object_id}_brightness" if self.dimmable else None


@dataclass(frozen=True)
class Thermostat:
    """A generic_thermostat (heating) in ``area``, measuring ``temperature`` °C at first."""

    name: str
    area: str | None = None
    temperature: float = 20.0
    target_temperature: float = 21.0

    @property
    def object_id(self) -> str:
        return slugify(self.name)

    @property
    def entity_id(self) -> str:
        return f"climate.{self.object_id}"

    @property
    def heater_entity(self) -> str:
        return f"input_boolean.{self.object_id}_heater"

    @property
    def temperature_entity(self) -> str:
        """The input_number that the thermostat reads as its current temperature."""
        return f"input_number.{self.object_id}_temperature"


@dataclass(frozen=True)
class House:
    """What the Home Assistant instance has: its lights, thermostats and areas."""

    lights: tuple[Light, ...] = ()
    thermostats: tuple[Thermostat, ...] = ()
    name: str = "Test Home"
    extra_areas: tuple[str, ...] = ()
    """Areas with nothing in them (the areas of the devices are made anyway)."""

    @property
    def areas(self) -> dict[str, str]:
        """area_id -> name of every area of the house."""
        names = [d.area for d in (*self.lights, *self.thermostats) if d.area]
        return {slugify(n): n for n in (*names, *self.extra_areas)}

    @property
    def entities(self) -> dict[str, str | None]:
        """entity_id -> area_id of each light and thermostat (exposed to Assist)."""
        return {
            d.entity_id: slugify(d.area) if d.area else None
            for d in (*self.lights, *self.thermostats)
        }

    @property
    def helpers(self) -> list[str]:
        """The input_boolean / input_number entities behind the devices (not exposed)."""
        found: list[str] = []
        for light in self.lights:
            found += [light.power_entity] + ([light.brightness_entity] if light.dimmable else [])  # type: ignore[list-item]
        for t in self.thermostats:
            found += [t.heater_entity, t.temperature_entity]
        return found


DEFAULT_HOUSE = House(
    lights=(
        Light("Office Light", "Office"),  # light.office_light, area office, dimmable
        Light("Kitchen Light", "Kitchen", dimmable=False),  # light.kitchen_light, on/off only
        Light("Living Room Lamp", "Living Room"),  # light.living_room_lamp, dimmable
    ),
    thermostats=(Thermostat("Living Room Thermostat", "Living Room"),),
)
"""Office Light (dimmable) in Office, Kitchen Light (on/off) in Kitchen, Living Room
Lamp (dimmable) and Living Room Thermostat (climate.living_room_thermostat) in
Living Room; area ids office, kitchen, living_room."""


def _yaml(value: Any) -> str:
    """A YAML scalar: JSON strings and numbers are valid YAML."""
    return json.dumps(value)


def configuration_yaml(house: House, port: int, extra: str = "") -> str:
    """Home Assistant's configuration.yaml for ``house`` on 127.0.0.1:``port``, with the
    YAML text ``extra`` (more top-level sections, e.g. ``media_source:``) at its end."""
    lines = [
        "homeassistant:",
        f"  name: {_yaml(house.name)}",
        "  latitude: 52.52",
        "  longitude: 13.405",
        "  elevation: 34",
        "  unit_system: metric",
        "  time_zone: UTC",
        "  country: DE",
        "  currency: EUR",
        "  language: en",
        "http:",
        f"  server_host: {HOST}",
        f"  server_port: {port}",
        "api:",
        "config:",
        "conversation:",
        "logger:",
        "  default: warning",
    ]
    booleans = [(lt.power_entity, f"{lt.name} power") for lt in house.lights] + [
        (t.heater_entity, f"{t.name} heater") for t in house.thermostats
    ]
    if booleans:
        lines.append("input_boolean:")
        for entity_id, name in booleans:
            lines += [f"  {entity_id.split('.', 1)[1]}:", f"    name: {_yaml(name)}"]
    numbers = [lt for lt in house.lights if lt.dimmable]
    if numbers or house.thermostats:
        lines.append("input_number:")
        for lt in numbers:
            assert lt.brightness_entity is not None
            lines += [
                f"  {lt.brightness_entity.split('.', 1)[1]}:",
                f"    name: {_yaml(lt.name + ' brightness')}",
                "    min: 1",
                "    max: 255",
                "    step: 1",
                "    mode: box",
            ]
        for t in house.thermostats:
            lines += [
                f"  {t.temperature_entity.split('.', 1)[1]}:",
                f"    name: {_yaml(t.name + ' temperature')}",
                "    min: -30",
                "    max: 50",
                "    step: 0.1",
                "    mode: box",
                "    unit_of_measurement: °C",
            ]
    if house.lights:
        lines += ["light:", "  - platform: template", "    lights:"]
        for lt in house.lights:
            power = lt.power_entity
            value_template = "{{ is_state('" + power + "', 'on') }}"
            lines += [
                f"      {lt.object_id}:",
                f"        unique_id: {_yaml('voiceagent_test_' + lt.object_id)}",
                f"        friendly_name: {_yaml(lt.name)}",
                f"        value_template: {_yaml(value_template)}",
                "        turn_on:",
                "          service: input_boolean.turn_on",
                f"          target: {{entity_id: {power}}}",
                "        turn_off:",
                "          service: input_boolean.turn_off",
                f"          target: {{entity_id: {power}}}",
            ]
            if lt.dimmable:
                level = lt.brightness_entity
                assert level is not None
                level_template = "{{ states('" + level + "') | int(255) }}"
                lines += [
                    f"        level_template: {_yaml(level_template)}",
                    "        set_level:",
                    "          - service: input_number.set_value",
                    f"            target: {{entity_id: {level}}}",
                    f"            data: {{value: {_yaml('{{ brightness }}')}}}",
                    "          - service: input_boolean.turn_on",
                    f"            target: {{entity_id: {power}}}",
                ]
    if house.thermostats:
        lines.append("climate:")
        for t in house.thermostats:
            lines += [
                "  - platform: generic_thermostat",
                f"    name: {_yaml(t.name)}",
                f"    unique_id: {_yaml('voiceagent_test_' + t.object_id)}",
                f"    heater: {t.heater_entity}",
                f"    target_sensor: {t.temperature_entity}",
                f"    target_temp: {t.target_temperature}",
                "    initial_hvac_mode: heat",
                "    min_temp: 5",
                "    max_temp: 30",
            ]
    return "\n".join(lines) + "\n" + extra


# -- a minimal WebSocket client (RFC 6455, client side, no extensions) -------------


class WebSocketError(RuntimeError):
    pass


class _WebSocket:
    def __init__(self, host: str, port: int, path: str, timeout: float) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self._buf:
            self._fill()
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            self._sock.close()
            raise WebSocketError(f"WebSocket upgrade refused: {head.decode(errors='replace')}")

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise WebSocketError("the WebSocket connection closed")
        self._buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = (
            (
                int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")
            ).to_bytes(n, "big")
            if n
            else b""
        )
        self._sock.sendall(head + mask + masked)

    def send_json(self, message: dict[str, Any]) -> None:
        self._send_frame(0x1, json.dumps(message).encode())

    def send_bytes(self, payload: bytes) -> None:
        """One binary message (e.g. audio for ``assist_pipeline/run``: its handler id
        byte, then the PCM)."""
        self._send_frame(0x2, payload)

    def receive_json(self) -> Any:
        parts: list[bytes] = []
        while True:
            b0, b1 = self._take(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._take(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._take(8))
            if b1 & 0x80:  # servers do not mask, but be lenient
                mask = self._take(4)
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(self._take(n)))
            else:
                payload = self._take(n)
            if opcode == 0x8:
                raise WebSocketError(f"the server closed the WebSocket: {payload[2:]!r}")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            if b0 & 0x80:
                return json.loads(b"".join(parts))

    def close(self) -> None:
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self._sock.close()


class HomeAssistantError(RuntimeError):
    """A command that Home Assistant answered with an error."""


# -- the server --------------------------------------------------------------------


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    out_path: Path
    started: float = field(default_factory=time.monotonic)


class HomeAssistant:
    """A ``hass`` process on ``127.0.0.1:<port>``, configured in ``directory``."""

    host = HOST

    def __init__(
        self,
        directory: Path,
        house: House = DEFAULT_HOUSE,
        *,
        port: int = 0,
        hass: Path = HASS,
        start_timeout: float = START_TIMEOUT_S,
        extra_config: str = "",
    ) -> None:
        """``directory``: holds the config dir (``config/``) and hass's own output.

        ``port``: 0 for a free one, chosen on the first :meth:`start`. ``hass``: the
        program (another venv's for another release). ``extra_config``: YAML text
        appended to configuration.yaml.
        """
        if not Path(hass).exists():
            raise RuntimeError(
                f"{hass} is missing: run 'make ha-venv' (a venv with Home Assistant 2024.3.3)"
            )
        self.directory = Path(directory)
        self.config_dir = self.directory / "config"
        self.house = house
        self.port = port
        """The TCP port, fixed by the first start and kept by later ones."""
        self.hass = Path(hass)
        self.start_timeout = start_timeout
        self.extra_config = extra_config
        self.start_seconds: float | None = None
        """How long the latest start took (until RUNNING and, the first time, set up)."""
        self._proc: _Proc | None = None
        self._token: str | None = None
        self._onboarded = False
        self.directory.mkdir(parents=True, exist_ok=True)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> HomeAssistant:
        """Start (the first time: configure, onboard, make the token, set up the
        house); wait until Home Assistant is RUNNING. Later starts keep the port,
        the config dir and so the token."""
        if self.running:
            raise RuntimeError("Home Assistant is already running")
        began = time.monotonic()
        try:
            if self._onboarded:
                self._launch()
            else:
                for attempt in range(5):  # a free port can be taken before hass binds it
                    if not self.port or attempt:
                        self.port = free_port()
                    self.config_dir.mkdir(parents=True, exist_ok=True)
                    (self.config_dir / "configuration.yaml").write_text(
                        configuration_yaml(self.house, self.port, self.extra_config), encoding="utf-8"
                    )
                    try:
                        self._launch()
                        break
                    except _PortInUse:
                        continue
                else:
                    raise RuntimeError("Home Assistant found no free port")
                self._onboard()
            self._wait_running()
            if not self._setup_done():
                self._set_up_house()
                # Home Assistant saves its registries up to 10 s after a change: stop
                # (which saves them) and start again, so that a kill() cannot lose them.
                self.stop()
                self._launch()
                self._wait_running()
                (self.directory / "house-set-up").write_text("")
        except BaseException:
            self.kill()  # no hass left behind by a failed start
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM: Home Assistant shuts down cleanly (and saves its .storage)."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: the process just dies, as when its host crashes. What changed in
        the last seconds may be lost: Home Assistant saves its registries up to 10 s
        (config entries 1 s) after a change."""
        self._end(signal.SIGKILL, 5)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port."""
        if self.running:
            self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.popen.pid if self.running and self._proc else None

    def rss(self) -> int:
        """Resident memory of the hass process in bytes (0 when not running)."""
        pid = self.pid
        if pid is None:
            return 0
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return 0
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(m.group(1)) * 1024 if m else 0

    def log(self, tail: int | None = None) -> str:
        """What hass printed (its log, and tracebacks) over all its starts, the last
        ``tail`` lines (home-assistant.log in the config dir has the latest start only)."""
        try:
            text = (self.directory / "hass.out").read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if tail is None else "\n".join(text.splitlines()[-tail:])

    # -- what a client needs -------------------------------------------------------

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/api/websocket"

    @property
    def token(self) -> str:
        """The long-lived access token of the admin user (valid across restarts)."""
        if self._token is None:
            raise RuntimeError("Home Assistant was never started: no token yet")
        return self._token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def write_token_file(self, path: Path) -> Path:
        """Write the token (and a newline) to ``path``, mode 0600; return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.token + "\n")
        path.chmod(0o600)
        return path

    # -- REST --------------------------------------------------------------------------

    def request(
        self, method: str, path: str, json_body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        """An authorized request to ``path`` (e.g. ``/api/states``); no status check."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.request(
            method, self.url + path, json=json_body, headers=headers, timeout=10, **kwargs
        )

    def api(self, method: str, path: str, json_body: Any = None) -> Any:
        """An authorized REST call; the decoded JSON answer. Raises HomeAssistantError
        (with the answer) on a status >= 400."""
        r = self.request(method, path, json_body)
        if r.status_code >= 400:
            raise HomeAssistantError(f"{method} {path} answered {r.status_code}: {r.text}")
        return r.json() if r.content else None

    def state(self, entity_id: str) -> dict[str, Any]:
        """``GET /api/states/<entity_id>``: entity_id, state, attributes, last_changed...

        Raises KeyError for an entity Home Assistant does not have."""
        r = self.request("GET", f"/api/states/{entity_id}")
        if r.status_code == 404:
            raise KeyError(entity_id)
        r.raise_for_status()
        return r.json()

    def states(self) -> list[dict[str, Any]]:
        return self.api("GET", "/api/states")

    def call_service(
        self, domain: str, service: str, data: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """``POST /api/services/<domain>/<service>`` with ``data`` (e.g. ``{"entity_id":
        "light.office_light", "brightness": 128}``); the states that changed."""
        return self.api("POST", f"/api/services/{domain}/{service}", data or {})

    def conversation(self, text: str, language: str = "en") -> dict[str, Any]:
        """What Assist (the built-in conversation agent) answers to ``text``."""
        return self.api("POST", "/api/conversation/process", {"text": text, "language": language})

    def wait_for_state(
        self,
        entity_id: str,
        state: str | Callable[[dict[str, Any]], bool],
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Poll until the entity's state is ``state`` (or the predicate on the whole
        state dict holds); return the state dict. AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while True:
            try:
                last = self.state(entity_id)
            except KeyError:
                last = None
            if last is not None and (
                state(last) if callable(state) else last.get("state") == state
            ):
                return last
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{entity_id} did not become {state!r} within {timeout} s; last: {last}"
                )
            time.sleep(0.05)

    # -- WebSocket ---------------------------------------------------------------------

    def ws(self, command: dict[str, Any], *, timeout: float = 10.0) -> Any:
        """One WebSocket command (without ``id``), e.g. ``{"type":
        "config/area_registry/list"}``: its result. Raises HomeAssistantError on failure."""
        return self.ws_many([command], timeout=timeout)[0]

    @contextlib.contextmanager
    def websocket(self, *, timeout: float = 10.0) -> Iterator[_WebSocket]:
        """An authenticated WebSocket connection, closed after: for commands that go on
        sending events (``assist_pipeline/run``, subscriptions). The caller numbers its
        commands (``id``) and reads the answers with ``receive_json()``."""
        sock = _WebSocket(self.host, self.port, "/api/websocket", timeout)
        try:
            hello = sock.receive_json()
            if hello.get("type") != "auth_required":
                raise WebSocketError(f"unexpected greeting {hello}")
            sock.send_json({"type": "auth", "access_token": self.token})
            auth = sock.receive_json()
            if auth.get("type") != "auth_ok":
                raise HomeAssistantError(f"WebSocket authentication failed: {auth}")
            yield sock
        finally:
            sock.close()

    def ws_many(
        self, commands: list[dict[str, Any]], *, timeout: float = 10.0, token: str | None = None
    ) -> list[Any]:
        """Several commands on one connection, in order; their results."""
        sock = _WebSocket(self.host, self.port, "/api/websocket", timeout)
        try:
            hello = sock.receive_json()
            if hello.get("type") != "auth_required":
                raise WebSocketError(f"unexpected greeting {hello}")
            sock.send_json({"type": "auth", "access_token": token or self.token})
            auth = sock.receive_json()
            if auth.get("type") != "auth_ok":
                raise HomeAssistantError(f"WebSocket authentication failed: {auth}")
            results = []
            for i, command in enumerate(commands, start=1):
                sock.send_json({**command, "id": i})
                while True:
                    msg = sock.receive_json()
                    if msg.get("id") == i and msg.get("type") == "result":
                        break
                if not msg.get("success"):
                    raise HomeAssistantError(f"{command} failed: {msg.get('error')}")
                results.append(msg.get("result"))
            return results
        finally:
            sock.close()

    def entity_registry(self) -> list[dict[str, Any]]:
        """``config/entity_registry/list``: entity_id, unique_id, platform, area_id, ..."""
        return self.ws({"type": "config/entity_registry/list"})

    def area_registry(self) -> list[dict[str, Any]]:
        """``config/area_registry/list``: area_id, name, ..."""
        return self.ws({"type": "config/area_registry/list"})

    def exposed_entities(self) -> dict[str, bool]:
        """entity_id -> whether it is exposed to Assist ("conversation")."""
        found = self.ws({"type": "homeassistant/expose_entity/list"})["exposed_entities"]
        return {e: s["conversation"] for e, s in found.items() if "conversation" in s}

    # -- MQTT ----------------------------------------------------------------------------

    def add_wyoming(self, port: int, host: str = HOST, timeout: float = 15.0) -> tuple[dict[str, Any], dict[str, Any]]:
        """Wyoming services at ``host:port`` added by Home Assistant's config flow, as its
        UI adds them (``handler: wyoming``, then host and port); the finished flow's
        answer and its config entry once loaded."""
        flow = self.api("POST", "/api/config/config_entries/flow",
                        {"handler": "wyoming", "show_advanced_options": False})
        assert (flow["type"], flow["step_id"]) == ("form", "user"), flow
        done = self.api("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"host": host, "port": port})
        assert done["type"] == "create_entry", done
        entry_id = done["result"]["entry_id"]
        deadline = time.monotonic() + timeout
        while True:
            entries = self.api("GET", "/api/config/config_entries/entry?domain=wyoming")
            entry = next((e for e in entries if e["entry_id"] == entry_id), None)
            if entry is not None and entry["state"] == "loaded":
                return done, entry
            assert time.monotonic() < deadline, f"Wyoming entry not loaded: {entry}\n{self.log(tail=30)}"
            time.sleep(0.05)

    def connect_mqtt(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 15.0,
    ) -> str:
        """Set up the MQTT integration on broker ``host:port`` (replacing an earlier
        one) and wait until it is loaded; its config entry id.

        Loaded means connected, not yet subscribed: wait for ``homeassistant/status``
        ``online`` (about 2 s later) before relying on discovery of non-retained
        messages. The entry is kept across restarts."""
        self.disconnect_mqtt()
        flow = self.api("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        if flow.get("type") != "form" or flow.get("step_id") != "broker":
            raise HomeAssistantError(f"unexpected MQTT config flow start: {flow}")
        data: dict[str, Any] = {"broker": host, "port": port}
        if username is not None:
            data["username"] = username
        if password is not None:
            data["password"] = password
        done = self.api("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", data)
        if done.get("type") != "create_entry":
            raise HomeAssistantError(f"the MQTT config flow did not finish: {done}")
        entry_id = done["result"]["entry_id"]
        deadline = time.monotonic() + timeout
        while (entry := self._mqtt_entry()) is None or entry["state"] != "loaded":
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"MQTT entry not loaded within {timeout} s: {entry}\n{self.log(tail=30)}"
                )
            time.sleep(0.05)
        return entry_id

    def disconnect_mqtt(self) -> None:
        """Remove the MQTT integration, if it is set up."""
        while (entry := self._mqtt_entry()) is not None:
            self.api("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")

    def _mqtt_entry(self) -> dict[str, Any] | None:
        entries = self.api("GET", "/api/config/config_entries/entry?domain=mqtt")
        return next((e for e in entries if e["domain"] == "mqtt"), None)

    # -- a clean slate between tests -------------------------------------------------

    def reset(self) -> None:
        """Every light off at full brightness, every thermostat back to its first
        temperatures and heating (the MQTT integration is left as it is)."""
        for light in self.house.lights:
            if light.brightness_entity:
                self.call_service(
                    "input_number", "set_value",
                    {"entity_id": light.brightness_entity, "value": 255},
                )  # fmt: skip
            self.call_service("input_boolean", "turn_off", {"entity_id": light.power_entity})
        for t in self.house.thermostats:
            self.call_service(
                "input_number", "set_value",
                {"entity_id": t.temperature_entity, "value": t.temperature},
            )  # fmt: skip
            self.call_service(
                "climate", "set_temperature",
                {"entity_id": t.entity_id, "temperature": t.target_temperature,
                 "hvac_mode": "heat"},
            )  # fmt: skip

    # -- internals ---------------------------------------------------------------------

    def _launch(self) -> None:
        out_path = self.directory / "hass.out"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        }
        # Its latest log only (hass.out keeps them all), for _port_in_use.
        (self.config_dir / "home-assistant.log").unlink(missing_ok=True)
        with out_path.open("ab") as out:
            popen = subprocess.Popen(
                [str(self.hass), "-c", str(self.config_dir), "--skip-pip", "--log-no-color"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self._proc = _Proc(popen, out_path)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if popen.poll() is not None:
                self._proc = None
                raise RuntimeError(
                    f"hass exited with {popen.returncode} while starting:\n{self.log(tail=40)}"
                )
            try:
                httpx.get(self.url + "/api/onboarding", timeout=1)
                return
            except httpx.TransportError:
                pass
            if self._port_in_use():
                self.kill()
                raise _PortInUse(f"port {self.port} is in use:\n{self.log(tail=20)}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"Home Assistant did not answer on {self.url} within "
                    f"{self.start_timeout} s:\n{self.log(tail=40)}"
                )
            time.sleep(0.05)

    def _port_in_use(self) -> bool:
        """Whether hass logged that it could not bind its port (it goes on without HTTP)."""
        try:
            log = (self.config_dir / "home-assistant.log").read_text(errors="replace")
        except FileNotFoundError:
            return False
        return "address already in use" in log.lower()

    def _wait_running(self) -> None:
        assert self._proc is not None
        deadline = self._proc.started + self.start_timeout
        while True:
            try:
                r = self.request("GET", "/api/config")
                if r.status_code == 200 and r.json().get("state") == "RUNNING":
                    return
            except httpx.TransportError:
                pass
            if not self.running:
                raise RuntimeError(f"hass exited while starting:\n{self.log(tail=40)}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"Home Assistant was not RUNNING within {self.start_timeout} s:\n"
                    f"{self.log(tail=40)}"
                )
            time.sleep(0.05)

    def _onboard(self) -> None:
        """The onboarding steps, as the frontend does them; then the long-lived token."""
        client_id = f"{self.url}/"
        r = httpx.post(
            f"{self.url}/api/onboarding/users",
            json={
                "client_id": client_id,
                "name": "Voice Agent",
                "username": USERNAME,
                "password": PASSWORD,
                "language": "en",
            },
            timeout=30,
        )
        r.raise_for_status()
        r = httpx.post(
            f"{self.url}/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": r.json()["auth_code"],
                "client_id": client_id,
            },
            timeout=10,
        )
        r.raise_for_status()
        access = r.json()["access_token"]
        auth = {"Authorization": f"Bearer {access}"}
        # core_config would start the config flows of google_translate, met,
        # radio_browser and shopping_list, whose packages are not installed;
        # analytics and integration just mark their steps done.
        for step, body in (
            ("analytics", None),
            (
                "integration",
                {"client_id": client_id, "redirect_uri": f"{client_id}?auth_callback=1"},
            ),
        ):
            r = httpx.post(f"{self.url}/api/onboarding/{step}", json=body, headers=auth, timeout=10)
            r.raise_for_status()
        (token,) = self.ws_many(
            [{"type": "auth/long_lived_access_token", "client_name": TOKEN_CLIENT_NAME,
              "lifespan": 3650}],
            token=access,
        )  # fmt: skip
        self._token = token
        self._onboarded = True

    def _setup_done(self) -> bool:
        return (self.directory / "house-set-up").exists()

    def _set_up_house(self) -> None:
        """Areas (exactly those of the house), the entities in them, Assist exposure,
        full brightness."""
        # Onboarding made a person for the user (and the areas Living Room, Kitchen
        # and Bedroom): the house has no person.
        persons = self.ws({"type": "person/list"})["storage"]
        areas = {a["area_id"]: a for a in self.area_registry()}
        commands: list[dict[str, Any]] = [
            {"type": "person/delete", "person_id": p["id"]} for p in persons
        ]
        for area_id in areas.keys() - self.house.areas.keys():  # onboarding's defaults
            commands.append({"type": "config/area_registry/delete", "area_id": area_id})
        for area_id, name in self.house.areas.items():
            if area_id not in areas:
                commands.append({"type": "config/area_registry/create", "name": name})
        self.ws_many(commands)
        made = {a["name"]: a["area_id"] for a in self.area_registry()}
        wrong = {n: made.get(n) for n in self.house.areas.values() if slugify(n) != made.get(n)}
        if wrong:
            raise RuntimeError(f"areas got unexpected ids: {wrong}")
        registered = {e["entity_id"] for e in self.entity_registry()}
        missing = set(self.house.entities) - registered
        if missing:
            raise RuntimeError(
                f"not in the entity registry: {sorted(missing)}\n{self.log(tail=40)}"
            )
        commands = [
            {"type": "config/entity_registry/update", "entity_id": e, "area_id": a}
            for e, a in self.house.entities.items()
        ]
        commands.append(
            {
                "type": "homeassistant/expose_entity",
                "assistants": ["conversation"],
                "entity_ids": list(self.house.entities),
                "should_expose": True,
            }
        )
        if self.house.helpers:
            commands.append(
                {
                    "type": "homeassistant/expose_entity",
                    "assistants": ["conversation"],
                    "entity_ids": self.house.helpers,
                    "should_expose": False,
                }
            )
        self.ws_many(commands)
        self.reset()

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        if self._proc is None:
            return
        popen = self._proc.popen
        if popen.poll() is None:
            popen.send_signal(sig)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        self._proc = None


class _PortInUse(RuntimeError):
    pass


def require_ha_venv() -> None:
    """Fail (not skip) when .venv-ha is not there."""
    if not HASS.exists():
        pytest.fail(f"{HASS} is missing: run 'make ha-venv' first", pytrace=False)


@pytest.fixture(scope="module")
def home_assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeAssistant]:
    """One Home Assistant with :data:`DEFAULT_HOUSE` for the test module, stopped
    after it. Tests share it: one that stops it starts it again; ``reset()`` turns
    the lights off."""
    require_ha_venv()
    ha = HomeAssistant(tmp_path_factory.mktemp("home-assistant")).start()
    try:
        yield ha
    finally:
        ha.kill()


@pytest.fixture
def home_assistant_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., HomeAssistant]]:
    """``make(house=DEFAULT_HOUSE, start=True)``: a HomeAssistant of its own, killed
    after the test."""
    require_ha_venv()
    made: list[HomeAssistant] = []

    def make(house: House = DEFAULT_HOUSE, *, start: bool = True) -> HomeAssistant:
        ha = HomeAssistant(tmp_path_factory.mktemp("home-assistant"), house)
        made.append(ha)
        return ha.start() if start else ha

    try:
        yield make
    finally:
        for ha in made:
            ha.kill()
