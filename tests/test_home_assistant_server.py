"""The test harness's real Home Assistant (tests/support/home_assistant.py) works: the
house is there, services act on it, its token survives a restart, and it can
connect to a real MQTT broker."""

from __future__ import annotations

import httpx
import pytest

from tests.support.broker import Broker
from tests.support.home_assistant import DEFAULT_HOUSE, HomeAssistant


@pytest.fixture(autouse=True)
def _clean(home_assistant: HomeAssistant) -> None:
    if not home_assistant.running:  # an earlier test failed while it was stopped
        home_assistant.start()
    home_assistant.reset()


def test_the_house_is_in_the_registries_and_exposed_to_assist(
    home_assistant: HomeAssistant,
) -> None:
    areas = {a["area_id"]: a["name"] for a in home_assistant.area_registry()}
    assert areas == {"office": "Office", "kitchen": "Kitchen", "living_room": "Living Room"}

    registry = {e["entity_id"]: e for e in home_assistant.entity_registry()}
    assert {e: registry[e]["area_id"] for e in DEFAULT_HOUSE.entities} == {
        "light.office_light": "office",
        "light.kitchen_light": "kitchen",
        "light.living_room_lamp": "living_room",
        "climate.living_room_thermostat": "living_room",
    }
    assert not [e for e in registry if e.startswith("person.")]

    exposed = home_assistant.exposed_entities()
    assert {e for e, yes in exposed.items() if yes} == set(DEFAULT_HOUSE.entities)

    office = home_assistant.state("light.office_light")
    assert office["state"] == "off"
    assert office["attributes"]["friendly_name"] == "Office Light"
    assert home_assistant.state("light.kitchen_light")["attributes"]["supported_color_modes"] == [
        "onoff"
    ]
    climate = home_assistant.state("climate.living_room_thermostat")
    assert climate["state"] == "heat"
    assert climate["attributes"]["current_temperature"] == 20.0
    assert climate["attributes"]["temperature"] == 21.0
    with pytest.raises(KeyError):
        home_assistant.state("light.nowhere")


def test_a_service_call_turns_a_light_on_and_dims_it(home_assistant: HomeAssistant) -> None:
    home_assistant.call_service("light", "turn_on", {"entity_id": "light.office_light"})
    on = home_assistant.wait_for_state("light.office_light", "on")
    assert on["attributes"]["brightness"] == 255
    assert home_assistant.state("input_boolean.office_light_power")["state"] == "on"

    home_assistant.call_service(
        "light", "turn_on", {"entity_id": "light.office_light", "brightness": 128}
    )
    home_assistant.wait_for_state(
        "light.office_light", lambda s: s["attributes"].get("brightness") == 128
    )
    home_assistant.call_service("light", "turn_off", {"entity_id": "light.office_light"})
    home_assistant.wait_for_state("light.office_light", "off")
    assert home_assistant.state("light.kitchen_light")["state"] == "off"


def test_assist_turns_on_the_lights_of_an_area(home_assistant: HomeAssistant) -> None:
    answer = home_assistant.conversation("turn on the lights in the living room")
    assert answer["response"]["response_type"] == "action_done", answer
    home_assistant.wait_for_state("light.living_room_lamp", "on")
    assert home_assistant.state("light.office_light")["state"] == "off"


def test_the_token_still_works_after_a_restart(home_assistant: HomeAssistant) -> None:
    token, url = home_assistant.token, home_assistant.url
    home_assistant.call_service("light", "turn_on", {"entity_id": "light.kitchen_light"})
    home_assistant.wait_for_state("light.kitchen_light", "on")

    home_assistant.stop()
    assert not home_assistant.running
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/api/", timeout=1)

    home_assistant.start()
    assert (home_assistant.token, home_assistant.url) == (token, url)
    r = httpx.get(f"{url}/api/", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.status_code == 200, r.text
    assert home_assistant.ws({"type": "get_config"})["state"] == "RUNNING"
    assert home_assistant.state("light.kitchen_light")["state"] == "on"  # restored
    bad = httpx.get(f"{url}/api/", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert bad.status_code == 401


def test_it_connects_to_an_mqtt_broker(home_assistant: HomeAssistant, broker: Broker) -> None:
    with broker.recorder() as recorder:
        entry_id = home_assistant.connect_mqtt(broker.host, broker.port)
        assert entry_id
        # Home Assistant announces itself on homeassistant/status once connected.
        recorder.wait_for("homeassistant/status", "online", timeout=10)
        home_assistant.call_service(
            "mqtt", "publish", {"topic": "voiceagent/test", "payload": "hello"}
        )
        recorder.wait_for("voiceagent/test", "hello")
    home_assistant.disconnect_mqtt()


def test_the_token_file(home_assistant: HomeAssistant, tmp_path) -> None:
    path = home_assistant.write_token_file(tmp_path / "secrets" / "ha-token")
    assert path.read_text().strip() == home_assistant.token
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_killed_home_assistant_comes_back_with_its_house(
    home_assistant: HomeAssistant,
) -> None:
    home_assistant.kill()
    home_assistant.start()
    registry = {e["entity_id"]: e["area_id"] for e in home_assistant.entity_registry()}
    assert registry["light.office_light"] == "office"
    assert home_assistant.ws({"type": "auth/current_user"})["name"] == "Voice Agent"
