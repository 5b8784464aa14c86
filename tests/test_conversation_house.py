"""Commands of the house in the conversation, with fake models and a fake house
on a manual clock: an action runs once, only after its turn commits, and what
is said is what came of it. The real sibling: tests/test_home_realha.py."""

from __future__ import annotations

import numpy as np

from tests.support.conversation import converse, first, types
from tests.support.fakes import FakeChat, silence, tone
from voiceagent.home.protocol import Command, Outcome


class FakeHouse:
    """Transcripts in ``commands`` are commands; each execute is recorded with the
    time of the last event seen (to compare with the end of turn)."""

    def __init__(self, commands: dict[str, str], outcome: str | None = None) -> None:
        self.commands = commands
        self.outcome = outcome
        self.executed: list[str] = []
        self.converses = False

    def match(self, text: str) -> Command | None:
        return Command("HassTurnOn", text, {"area": "office"}) if text in self.commands else None

    def expected(self, command: Command) -> str | None:
        return self.commands[command.text]

    async def execute(self, command: Command) -> Outcome:
        self.executed.append(command.text)
        speech = self.outcome if self.outcome is not None else self.commands[command.text]
        return Outcome(speech, "done" if self.outcome is None else "unavailable", ("light.office",))

    async def converse(self, text: str) -> Outcome:
        raise AssertionError("no agent")

    def cannot_act(self) -> str:
        return "Sorry, I didn't do that."


def test_a_command_runs_once_after_the_end_of_turn_and_says_what_it_did():
    house, chat = FakeHouse({"speech 10": "Turned on the lights"}), FakeChat()
    audio = np.concatenate([silence(0.5), tone(1.0), silence(2.5)])
    events, out, conv = converse(audio, chat=chat, commands=house)
    assert house.executed == ["speech 10"] and chat.seen == []  # no LLM
    intent = first(events, "intent", 1)
    assert (intent.intent, intent.result, intent.targets) == ("HassTurnOn", "done", ("light.office",))
    assert intent.t >= first(events, "end_of_turn", 1).t  # never before the turn committed
    turn_end = first(events, "turn_end", 1)
    assert (turn_end.reason, turn_end.reply) == ("answered", "Turned on the lights")
    assert "llm_first_token" not in types(events, 1)
    assert conv.history.exchanges[0].assistant == "Turned on the lights"


def test_a_command_whose_speech_goes_on_is_never_carried_out():
    # "speech 10" is a command at the pause, but the user goes on: the speculation
    # is discarded, and the whole utterance ("speech 20") is no command.
    house = FakeHouse({"speech 10": "Turned on the lights"})
    # A pause shorter than the 250 ms a command waits (a longer one ends the turn:
    # a command is a finished request, and what comes after is a continuation).
    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.2), tone(1.0), silence(3.0)])
    events, _, _ = converse(audio, commands=house)
    assert "speculation_discarded" in types(events)
    assert house.executed == [] and "intent" not in types(events)
    assert first(events, "turn_end", 1).reply == "Hello there, friend. How are you today?"


def test_what_came_of_it_is_said_not_what_was_expected():
    house = FakeHouse({"speech 10": "Turned on the lights"}, outcome="I can't reach Home Assistant.")
    audio = np.concatenate([silence(0.5), tone(1.0), silence(2.5)])
    events, _, _ = converse(audio, commands=house)
    assert first(events, "intent", 1).result == "unavailable"
    assert first(events, "turn_end", 1).reply == "I can't reach Home Assistant."


def test_ask_carries_out_a_command_once():
    house = FakeHouse({"turn on the lights": "Turned on the lights"})
    events, _, _ = converse(silence(2.0), commands=house, actions=[(0.5, lambda c: c.ask("turn on the lights"))])
    assert house.executed == ["turn on the lights"]
    assert first(events, "turn_end", 1).reply == "Turned on the lights"


def test_a_reply_that_claims_an_action_is_replaced_by_the_truth():
    chat = FakeChat("The office lights are on. Anything else?")
    events, _, conv = converse(np.concatenate([silence(0.5), tone(1.0), silence(2.5)]), chat=chat,
                               commands=FakeHouse({}))
    assert first(events, "turn_end", 1).reply == "Sorry, I didn't do that."
    events, _, _ = converse(np.concatenate([silence(0.5), tone(1.0), silence(2.5)]), chat=chat)
    assert first(events, "turn_end", 1).reply == "Sorry, I can't do that: I'm not connected to any devices."


def test_a_claim_split_after_three_words_is_still_caught():
    # The first clause is cut after tts.first_clause_max_words (3): "The office
    # lights" + "are on." is a claim neither half is alone.
    from voiceagent.rules.claims import might_claim

    assert might_claim("The office lights")
    assert might_claim("The kitchen lamp")
    assert not might_claim("The ocean is a")
