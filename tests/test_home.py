"""The house's logic without a Home Assistant: intents matched against a house,
what a command targets and says, timers, and the honesty check on the LLM.

Their real sibling is tests/test_home_realha.py (a real Home Assistant)."""

from __future__ import annotations

import asyncio

import pytest

from voiceagent.home.actions import plan
from voiceagent.home.control import NOT_CONNECTED, UNREACHABLE, HomeControl
from voiceagent.home.house import Area, Entity, House, build_house
from voiceagent.home.intents import IntentMatcher
from voiceagent.home.timers import Timers, spoken_length
from voiceagent.rules.claims import claims_action


def a_house() -> House:
    house = House(
        areas={
            "office": Area("office", "Office"),
            "kitchen": Area("kitchen", "Kitchen", ("cooking room",)),
            "living_room": Area("living_room", "Living Room"),
        },
        entities={
            "light.office_light": Entity("light.office_light", "Office Light", (), "office"),
            "light.kitchen_light": Entity("light.kitchen_light", "Kitchen Light", (), "kitchen"),
            "light.living_room_lamp": Entity("light.living_room_lamp", "Living Room Lamp", (), "living_room"),
            "switch.alarm": Entity("switch.alarm", "Alarm", (), "office", exposed=False),
        },
    )
    house.states = {
        "light.office_light": {"state": "off", "attributes": {"friendly_name": "Office Light"}},
        "light.kitchen_light": {"state": "on", "attributes": {"friendly_name": "Kitchen Light"}},
        "light.living_room_lamp": {"state": "off", "attributes": {}},
        "switch.alarm": {"state": "off", "attributes": {}},
    }
    return house


@pytest.fixture(scope="module")
def matcher() -> IntentMatcher:
    m = IntentMatcher("en", area="Office")
    m.update(a_house())
    return m


def speech_of(matcher: IntentMatcher, text: str, house: House | None = None) -> tuple[str, tuple[str, ...], str | None]:
    command = matcher.match(text)
    assert command is not None, text
    p = plan(command, house or a_house(), matcher.template(command), matcher.errors, exposed_only=True)
    return p.speech, tuple(sorted({e for c in p.calls for e in c.entity_ids})) or p.targets, p.error


@pytest.mark.parametrize(
    "text, intent, targets",
    [
        ("Turn on the office lights.", "HassTurnOn", ("light.office_light",)),
        ("turn on the lights", "HassTurnOn", ("light.office_light",)),  # this assistant's area
        ("Turn the lights on in here.", "HassTurnOn", ("light.office_light",)),
        ("Turn off the kitchen light.", "HassTurnOff", ("light.kitchen_light",)),
        ("switch off the lights in the cooking room", "HassTurnOff", ("light.kitchen_light",)),  # an alias
        ("Turn on the Living Room Lamp.", "HassTurnOn", ("light.living_room_lamp",)),
        ("set the office light to 50%", "HassLightSet", ("light.office_light",)),
        ("make the kitchen light red", "HassLightSet", ("light.kitchen_light",)),
    ],
)
def test_device_commands_target_the_right_lights(matcher: IntentMatcher, text: str, intent: str, targets: tuple) -> None:
    command = matcher.match(text)
    assert command is not None and command.intent == intent
    _, found, error = speech_of(matcher, text)
    assert error is None and found == targets


def test_home_assistants_own_words_are_spoken(matcher: IntentMatcher) -> None:
    assert speech_of(matcher, "turn on the office lights")[0] == "Turned on the lights"
    assert speech_of(matcher, "turn off the kitchen light")[0] == "Turned off the lights"  # area + domain, as HA
    assert speech_of(matcher, "set the office light to 50%")[0] == "Brightness set"


def test_state_questions_are_answered_from_the_state(matcher: IntentMatcher) -> None:
    assert speech_of(matcher, "Is the kitchen light on?")[0] == "Yes"
    assert speech_of(matcher, "Is the office light on?")[0] == "No, off"


@pytest.mark.parametrize(
    "text, targets",
    [
        # Words around the command that HA's sentences do not allow.
        ("Um, turn on the kitchen light.", ("light.kitchen_light",)),
        ("Okay, turn off the office light now.", ("light.office_light",)),
        ("Turn on the lights, thank you.", ("light.office_light",)),
        ("Turn on all the lights.", ("light.office_light",)),  # this area's, as "the lights"
        ("Dim the kitchen light to 20%.", ("light.kitchen_light",)),
        ("Dim the lights to 30 percent.", ("light.office_light",)),
        # Names Whisper misheard, taken for the name they are close to.
        ("Turn on the kitchen like.", ("light.kitchen_light",)),
        ("Turn on the kitchen late.", ("light.kitchen_light",)),
        ("Turn off the leaving room lamp.", ("light.living_room_lamp",)),
        ("turn off the office lie", ("light.office_light",)),
    ],
)
def test_what_people_say_around_a_command_and_misheard_names(matcher: IntentMatcher, text: str, targets: tuple) -> None:
    _, found, error = speech_of(matcher, text)
    assert error is None and found == targets, text


@pytest.mark.parametrize(
    "text, speech",
    [
        ("Are the lights on in the kitchen?", "Yes, Kitchen Light"),
        ("Is the light on in the kitchen?", "Yes, Kitchen Light"),
        ("Are the office lights on?", "No"),
        ("Is the light on?", "No"),  # this area's: the office light is off
        ("Are the lights on in here?", "No"),
        ("Is the kitchen light turned on?", "Yes"),
        ("Is the kitchen light off?", "No, on"),
    ],
)
def test_state_questions_in_other_words(matcher: IntentMatcher, text: str, speech: str) -> None:
    assert speech_of(matcher, text)[0] == speech


def test_a_name_said_as_written_is_never_made_another() -> None:
    from voiceagent.home.names import closest_name

    names = ["Kitchen Light", "Kitchen Lights", "Kitchen", "Office Light"]
    assert closest_name("turn on the kitchen light", names) is None
    assert closest_name("turn on the kitchen lights on", names) is None
    assert closest_name("turn on the kitchen like", names) == "turn on the Kitchen Light"
    assert closest_name("turn the kitchen light on", ["Kitchen Light On Switch"]) is None
    assert closest_name("what is the weather like today", names) is None


def test_unknown_names_and_hidden_entities_are_said_so(matcher: IntentMatcher) -> None:
    speech, targets, error = speech_of(matcher, "turn on the light in the garage")
    assert (speech, targets, error) == ("Sorry, I am not aware of any area called garage", (), "no_area")
    # Not exposed to Assist: not controlled (HA's rule); the command is no command then.
    command = matcher.match("turn on the alarm")
    assert command is None or plan(command, a_house(), matcher.template(command), matcher.errors, True).error


def test_chat_is_not_a_command(matcher: IntentMatcher) -> None:
    for text in ("What is the capital of France?", "Tell me a joke.", "Go forward ten meters.", "",
                 "What is the kitchen like?", "Okay.", "Um.", "Thank you.", "Now tell me about the living room.",
                 "How much time do I need to boil an egg?", "Is the light of the moon reflected sunlight?",
                 # HA's "{area} {brightness}" takes any words before a number
                 "The answer is 42.", "5 5.", "Apollo 11", "My score was 80%.", "Windows 95",
                 # a misheard question is never taken for an action
                 "Is Makhilchian light on?", "Is de kitchen light on?"):
        assert matcher.match(text) is None, text


def test_a_house_from_home_assistants_registries() -> None:
    house = build_house(
        areas=[{"area_id": "office", "name": "Office", "aliases": ["study"], "floor_id": None}],
        floors=[],
        devices=[{"id": "d1", "area_id": "office"}],
        entities=[
            {"entity_id": "light.desk", "device_id": "d1", "area_id": None, "name": None, "aliases": ["desk lamp"]},
            {"entity_id": "switch.voice_agent_mute", "entity_category": "config", "area_id": "office"},
            {"entity_id": "light.gone", "disabled_by": "user"},
        ],
        states=[
            {"entity_id": "light.desk", "state": "on", "attributes": {"friendly_name": "Desk"}},
            {"entity_id": "switch.voice_agent_mute", "state": "off", "attributes": {}},
            {"entity_id": "light.gone", "state": "unavailable", "attributes": {}},
            {"entity_id": "input_boolean.x", "state": "on", "attributes": {}},
        ],
        exposed={"input_boolean.x": {"conversation": True}},
    )
    desk = house.entities["light.desk"]
    assert (desk.name, desk.aliases, desk.area_id, desk.exposed) == ("Desk", ("desk lamp",), "office", True)
    assert house.entities["switch.voice_agent_mute"].exposed is False  # a control: never by voice
    assert "light.gone" not in house.entities
    assert house.entities["input_boolean.x"].exposed is True  # exposed by the user
    assert house.area("study") is house.areas["office"]
    house.on_state_changed({"entity_id": "light.desk", "new_state": {"state": "off"}})
    assert house.state_of("light.desk") == "off"


def test_without_a_house_device_commands_are_answered_honestly() -> None:
    async def main() -> None:
        control = HomeControl(IntentMatcher("en"), Timers(), connection=None)
        command = control.match("Turn on the office lights.")
        assert command is not None and command.needs_house
        assert control.expected(command) == NOT_CONNECTED
        outcome = await control.execute(command)
        assert (outcome.speech, outcome.result) == (NOT_CONNECTED, "unavailable")
        assert not claims_action(outcome.speech)

    asyncio.run(main())


def test_unreachable_text_says_nothing_was_done() -> None:
    assert "can't reach" in UNREACHABLE


def test_timers_ring_report_and_cancel() -> None:
    async def main() -> None:
        rang: list[int] = []
        changes: list[int] = []
        timers = Timers(lambda t: rang.append(t.seconds), lambda ts: changes.append(len(ts)))
        control = HomeControl(IntentMatcher("en"), timers)
        start = control.match("set a timer for five minutes")
        assert start is not None and start.intent == "HassStartTimer"
        assert (await control.execute(start)).speech == "Timer set for five minutes"
        status = control.match("how much time is left on the timer")
        assert status is not None
        left = (await control.execute(status)).speech
        assert left.startswith("4 minutes and 59 seconds") or left.startswith("5 minutes"), left
        cancel = control.match("cancel the timer")
        assert cancel is not None and (await control.execute(cancel)).speech == "Timer cancelled"
        assert (await control.execute(cancel)).result == "not_found"
        timers.start(1, "tea")
        await asyncio.sleep(1.2)
        assert rang == [1] and len(timers) == 0
        assert changes == [1, 0, 1, 0]

    asyncio.run(main())


def test_spoken_lengths() -> None:
    assert spoken_length(300) == "5 minutes"
    assert spoken_length(3600 + 1800) == "1 hour and 30 minutes"
    assert spoken_length(3661) == "1 hour, 1 minute and 1 second"


@pytest.mark.parametrize(
    "text",
    [
        "The office lights are on.", "I turned on the office lights.", "I've switched off the kitchen light.",
        "Okay, turning on the lights.", "Done!", "The lights have been turned off.",
        "I'll turn on the lights for you.", "The door is now locked.", "I have set the thermostat to 21 degrees.",
        "No, the kitchen is not on.", "I'll just turn on the lights in your office, please.",
        "The kitchen light is still on.", "Turned off the lights", "Okay, switched on the lamp.",
    ],
)
def test_claimed_actions_are_caught(text: str) -> None:
    assert claims_action(text)


@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital of France.", "I can't control devices.", "Would you like me to turn on the lights?",
        "The sun is out today.", "Closing time is at nine.", "The light of the moon is reflected sunlight.",
        "Set a goal and stick to it.",
    ],
)
def test_other_sentences_are_not_claims(text: str) -> None:
    assert not claims_action(text)


def test_registries_of_an_unexpected_shape_are_read_as_far_as_they_make_sense() -> None:
    house = build_house(
        areas=[{"name": "no id"}, {"area_id": "office", "aliases": ["study", 5, None]}, "junk"],
        floors=[None],
        devices=[None, {"id": "d1"}],
        entities=[{"x": 1}, "bad", {"entity_id": "light.desk", "aliases": "not a list"}],
        states=[None, {"entity_id": "light.desk", "attributes": None}, {"entity_id": 5}, {"entity_id": "nodot"}],
        exposed={},
    )
    assert list(house.areas) == ["office"] and house.areas["office"].aliases == ("study",)
    assert list(house.entities) == ["light.desk"] and house.entities["light.desk"].aliases == ()
    matcher = IntentMatcher("en")
    matcher.update(house)  # and the names still make slot lists
    assert matcher.match("turn on the desk") is not None


def test_home_assistant_down_from_the_start_is_answered_honestly() -> None:
    """Nothing listens on the port: the house was never read, so no name is known,
    and still a device command is one, answered "I can't reach Home Assistant"."""
    import socket

    from voiceagent.home.client import ClientSettings
    from voiceagent.home.connection import HomeConnection

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there

    async def main() -> None:
        settings = ClientSettings(f"http://127.0.0.1:{port}", "token", 1.0, 1.0, 0.1, 0.5, True)
        control = HomeControl(IntentMatcher("en", area="Office"), Timers(), HomeConnection(settings))
        stop = asyncio.Event()
        task = asyncio.ensure_future(control.connection.run(stop))
        try:
            await asyncio.sleep(0.3)  # a failed attempt or two
            for text in ("Turn on the kitchen light.", "Could you switch on the lamp in the living room, please?",
                         "Turn the lights on."):
                command = control.match(text)
                assert command is not None and command.needs_house, text
                assert control.expected(command) == UNREACHABLE
                outcome = await control.execute(command)
                assert (outcome.result, outcome.speech) == ("unavailable", UNREACHABLE), text
                assert not claims_action(outcome.speech)
        finally:
            stop.set()
            await task

    asyncio.run(main())


def test_an_area_the_house_has_not_narrows_down_to_nothing() -> None:
    """homeassistant.area misspelt: "turn on the lights" must not turn on the whole house."""
    matcher = IntentMatcher("en", area="Offfice")
    matcher.update(a_house())
    speech, targets, error = speech_of(matcher, "turn on the lights")
    assert (speech, targets, error) == ("Sorry, I am not aware of any area called Offfice", (), "no_area")
    assert speech_of(matcher, "turn on the kitchen light")[1] == ("light.kitchen_light",)  # by name: still fine
