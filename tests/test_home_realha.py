"""Control of the house against a real Home Assistant 2024.3.3 (``.venv-ha``), started
by the tests on loopback with lights and a thermostat in areas (tests/support/home_assistant.py).

- the connection and the intents without models: the house read and followed,
  commands carried out in HA, questions answered from HA's states, HA stopped and
  back, a refused token;
- ``voiceagent serve`` end to end with the real models: spoken commands turn real
  lights on and off (in this area and by name), a state question is answered from
  HA's state, a timer rings, HA stopped mid-run is answered honestly and used again
  once it is back, and the MQTT entities appear in HA's registry, categorized, so
  that HA's own Assist cannot mute us.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.daemon import NODE, Daemon, serve_config
from tests.support.home_assistant import HomeAssistant
from tests.support.speech import require_models
from voiceagent.home.client import ClientSettings
from voiceagent.home.connection import HomeConnection
from voiceagent.home.control import UNREACHABLE, HomeControl
from voiceagent.home.intents import IntentMatcher
from voiceagent.home.timers import Timers
from voiceagent.rules.claims import claims_action

OFFICE, KITCHEN, LAMP = "light.office_light", "light.kitchen_light", "light.living_room_lamp"


def control_for(ha: HomeAssistant, token: str | None = None) -> HomeControl:
    settings = ClientSettings(ha.url, token or ha.token, 5.0, 5.0, 0.1, 0.5, True)
    return HomeControl(IntentMatcher("en", area="Office"), Timers(), HomeConnection(settings))


@contextlib.asynccontextmanager
async def running(control: HomeControl):
    """``control`` with its connection running (stopped and awaited after)."""
    stop = asyncio.Event()
    task = asyncio.ensure_future(control.connection.run(stop))
    try:
        yield control
    finally:
        stop.set()
        await task


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def say(control: HomeControl, text: str):
    command = control.match(text)
    assert command is not None, text
    return await control.execute(command)


def test_commands_act_on_the_real_house_and_questions_read_it(home_assistant: HomeAssistant) -> None:
    home_assistant.reset()

    async def main() -> None:
        async with running(control_for(home_assistant)) as control:
            await until(lambda: control.connection.available)
            house = control.connection.house
            assert {a.name for a in house.areas.values()} == {"Office", "Kitchen", "Living Room"}
            assert {e.entity_id for e in house.entities.values() if e.exposed} == {
                OFFICE, KITCHEN, LAMP, "climate.living_room_thermostat",
            }
            # "the lights" with no area: this assistant's area (Office), only
            outcome = await say(control, "Turn on the lights.")
            assert (outcome.result, outcome.targets, outcome.speech) == ("done", (OFFICE,), "Turned on the lights")
            home_assistant.wait_for_state(OFFICE, "on")
            assert home_assistant.state(KITCHEN)["state"] == "off"
            # by name, elsewhere; then a question answered from HA's state, kept current
            assert (await say(control, "Turn on the kitchen light.")).result == "done"
            home_assistant.wait_for_state(KITCHEN, "on")
            await until(lambda: house.state_of(KITCHEN) == "on")
            assert (await say(control, "Is the kitchen light on?")).speech == "Yes"
            home_assistant.call_service("light", "turn_off", {"entity_id": KITCHEN})  # changed in HA
            await until(lambda: control.connection.house.state_of(KITCHEN) == "off")
            assert (await say(control, "Is the kitchen light on?")).speech == "No, off"
            assert (await say(control, "Set the living room lamp to 30%")).speech == "Brightness set"
            lamp = home_assistant.wait_for_state(LAMP, "on")
            assert abs(lamp["attributes"]["brightness"] - 76) <= 2  # 30% of 255
            assert (await say(control, "What's the temperature in the living room?")).speech == "20.0 degrees"
            missing = await say(control, "Turn on the garage light.")
            assert (missing.result, missing.speech) == ("not_found", "Sorry, I am not aware of any area called garage")
            # what people say around a command, a name misheard, a question in other words
            assert (await say(control, "Um, turn on the kitchen like, thanks.")).result == "done"
            home_assistant.wait_for_state(KITCHEN, "on")
            await until(lambda: house.state_of(KITCHEN) == "on")
            assert (await say(control, "Are the lights on in the kitchen?")).speech == "Yes, Kitchen Light"
            assert (await say(control, "Dim the office light to 20%.")).speech == "Brightness set"
            home_assistant.wait_for_state(OFFICE, lambda s: abs((s["attributes"].get("brightness") or 0) - 51) <= 2)

    asyncio.run(main())


def test_home_assistant_stopped_and_back(home_assistant: HomeAssistant) -> None:
    home_assistant.reset()

    async def main() -> None:
        async with running(control_for(home_assistant)) as control:
            await until(lambda: control.connection.available)
            home_assistant.stop()
            await until(lambda: not control.connection.available)
            command = control.match("Turn on the office lights.")
            assert command is not None and control.expected(command) == UNREACHABLE
            started = time.perf_counter()
            outcome = await control.execute(command)
            assert time.perf_counter() - started < 0.1  # at once, not after a timeout
            assert (outcome.result, outcome.speech) == ("unavailable", UNREACHABLE)
            assert not claims_action(outcome.speech)
            home_assistant.start()
            assert home_assistant.state(OFFICE)["state"] == "off"  # nothing was done meanwhile
            await until(lambda: control.connection.available, timeout=10)
            assert (await control.execute(command)).result == "done"
            home_assistant.wait_for_state(OFFICE, "on")

    asyncio.run(main())


def test_a_refused_token_is_one_log_line_and_no_claim(home_assistant: HomeAssistant, caplog) -> None:
    async def main() -> None:
        async with running(control_for(home_assistant, token="not-a-token")) as control:
            await asyncio.sleep(1.5)  # several retries
            assert not control.connection.available
            outcome = await say(control, "Turn on the office lights.")
            assert outcome.speech == UNREACHABLE

    with caplog.at_level(logging.WARNING, logger="voiceagent.home.client"):
        asyncio.run(main())
    refused = [r for r in caplog.records if "refused the access token" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in caplog.records]


# ------------------------------------------------------- the daemon, end to end


def intents(events_path: Path) -> list[dict]:
    return [e for e in map(json.loads, events_path.read_text().splitlines()) if e["type"] == "intent"]


def turn_ends(events_path: Path) -> list[dict]:
    return [e for e in map(json.loads, events_path.read_text().splitlines()) if e["type"] == "turn_end"]


def wait_for(predicate, timeout: float, what: str, daemon: Daemon):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        assert daemon.proc.poll() is None, f"the daemon exited: {daemon.log()[-2000:]}"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; log: {daemon.log()[-3000:]}")


@pytest.mark.realmodel
def test_serve_controls_the_real_house_by_voice(tmp_path: Path, broker: Broker, home_assistant: HomeAssistant) -> None:
    require_models()
    home_assistant.reset()
    home_assistant.connect_mqtt(broker.host, broker.port)
    token_file = home_assistant.write_token_file(tmp_path / "ha-token")
    config = serve_config(
        tmp_path, broker, wake={"model": "none"},
        homeassistant={"url": home_assistant.url, "token_file": str(token_file), "area": "Office",
                       "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
    )
    rec = broker.recorder()
    parts = [
        1.0, "Turn on the lights.", 4.0,                 # this area: the office light
        "Turn on the kitchen light.", 4.0,              # by name
        "Is the kitchen light on?", 4.0,                # answered from HA's state
        "Turn off the office light.", 12.0,             # then a timer, asked over MQTT
        "Turn the living room lamp on.", 10.0,          # HA is stopped before this one
        "Turn the living room lamp on.", 6.0,           # ... and back before this one
    ]
    daemon = Daemon(tmp_path, config, parts)
    try:
        wait_for(lambda: home_assistant.state(OFFICE)["state"] == "on", 90, "the office light on", daemon)
        wait_for(lambda: home_assistant.state(KITCHEN)["state"] == "on", 20, "the kitchen light on", daemon)
        wait_for(lambda: home_assistant.state(OFFICE)["state"] == "off", 30, "the office light off", daemon)
        wait_for(lambda: len(turn_ends(daemon.events)) >= 4, 10, "its reply", daemon)  # an ask would cut it
        rec.publish(f"voiceagent/{NODE}/ask/set", "set a timer for two seconds")
        wait_for(lambda: len(intents(daemon.events)) >= 5, 10, "the timer", daemon)
        rec.wait_for(f"voiceagent/{NODE}/event/timer", timeout=10)  # it rang
        home_assistant.stop()
        wait_for(lambda: len(intents(daemon.events)) >= 6, 30, "the command with HA down", daemon)
        home_assistant.start()
        wait_for(lambda: len(intents(daemon.events)) >= 7, 30, "the command with HA back", daemon)
        wait_for(lambda: home_assistant.state(LAMP)["state"] == "on", 10, "the lamp on", daemon)
        wait_for(lambda: len(turn_ends(daemon.events)) >= 8, 10, "its reply", daemon)
        # The MQTT entities, as HA's registry holds them (HA restarted meanwhile).
        registry = {e["unique_id"]: e for e in home_assistant.entity_registry() if e["platform"] == "mqtt"}
        assert len([u for u in registry if u.startswith(NODE)]) == 9
        categories = {u[len(NODE) + 1:]: e["entity_category"] for u, e in registry.items()}
        assert categories["mute"] == categories["say"] == categories["stop"] == "config"
        assert categories["latency"] == "diagnostic" and categories["transcript"] is None
        mute_id = registry[f"{NODE}_mute"]["entity_id"]
        assert home_assistant.exposed_entities().get(mute_id) is not True
        code, _ = daemon.signal(__import__("signal").SIGTERM)
        assert code == 0
    finally:
        daemon.close()

    found = intents(daemon.events)
    got = [(e["intent"], e["result"], tuple(e["targets"]), e["speech"]) for e in found]
    assert got[0] == ("HassTurnOn", "done", (OFFICE,), "Turned on the lights")
    assert got[1][:3] == ("HassTurnOn", "done", (KITCHEN,))
    assert got[2] == ("HassGetState", "answered", (KITCHEN,), "Yes")
    assert got[3][:3] == ("HassTurnOff", "done", (OFFICE,))
    assert got[4][:2] == ("HassStartTimer", "done")
    assert got[5][1:] == ("unavailable", (), UNREACHABLE)
    assert got[6][:3] == ("HassTurnOn", "done", (LAMP,))
    events = [json.loads(line) for line in daemon.events.read_text().splitlines()]
    # The token is in no log and no event.
    assert home_assistant.token not in daemon.log() and home_assistant.token not in daemon.events.read_text()
    says = [e["text"] for e in events if e["type"] == "text_request" and e["command"] == "say"]
    assert says == ["Your timer for 2 seconds is done."]
    # What was said back: the replies of the turns, and none claims the lamp is on while HA was away.
    ends = {e["turn"]: e for e in events if e["type"] == "turn_end"}
    down = ends[found[5]["turn"]]
    assert down["reply"] == UNREACHABLE and not claims_action(down["reply"])
    # Voice to voice, from the end of speech to the first sound of the answer.
    log = [json.loads(line) for line in (tmp_path / "conversations.jsonl").read_text().splitlines()]
    commands = [t for t in log if t.get("intent")]
    assert len(commands) == 7 and all(t["latency_ms"] is not None for t in commands)
    assert all(t["reason"] == "answered" and t["reply"] for t in commands[:4] + commands[5:])
    assert commands[0]["intent"]["targets"] == [OFFICE]
    # The transcript reached MQTT when the turn was accepted, before its reply was.
    topics = [m.topic for m in rec.messages()]
    assert topics.index(f"voiceagent/{NODE}/transcript/state") < topics.index(f"voiceagent/{NODE}/reply/state")
    assert rec.wait_for(f"voiceagent/{NODE}/event/intent").json()["intent"] == "HassTurnOn"
    rec.close()


def test_home_assistants_conversation_agent_answers_what_no_intent_matches(home_assistant: HomeAssistant) -> None:
    home_assistant.reset()

    async def main() -> None:
        settings = ClientSettings(home_assistant.url, home_assistant.token, 5.0, 5.0, 0.1, 0.5, True)
        control = HomeControl(IntentMatcher("en", area="Office"), Timers(), HomeConnection(settings),
                              agent="homeassistant")  # conversation.home_assistant from HA 2024.6
        async with running(control):
            await until(lambda: control.connection.available)
            assert control.converses
            outcome = await control.converse("turn on the lights in the living room")
            assert (outcome.result, outcome.speech, outcome.targets) == ("done", "Turned on the lights", (LAMP,))
            home_assistant.wait_for_state(LAMP, "on")
            home_assistant.stop()
            await until(lambda: not control.connection.available)
            assert (await control.converse("turn off the lights")).speech == UNREACHABLE
            home_assistant.start()

    asyncio.run(main())


def test_a_house_that_cannot_be_read_is_an_outage_not_a_crash(home_assistant: HomeAssistant, caplog) -> None:
    from voiceagent.home.client import HomeAssistantClient

    async def main() -> None:
        async def broken() -> None:
            raise KeyError("area_id")  # a registry in a shape nobody expected

        settings = ClientSettings(home_assistant.url, home_assistant.token, 5.0, 5.0, 0.1, 0.3, True)
        client = HomeAssistantClient(settings, on_connect=broken)
        stop = asyncio.Event()
        task = asyncio.ensure_future(client.run(stop))
        await asyncio.sleep(1.0)  # several attempts
        assert not client.connected and not task.done()
        stop.set()
        await task

    with caplog.at_level(logging.WARNING, logger="voiceagent.home.client"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "cannot read the house" in r.getMessage()]
    assert len(lines) == 1 and "KeyError" in lines[0]
