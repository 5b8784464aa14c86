"""What the dialogue knows of the house: a command found in a transcript, what
came of carrying it out, and the one object that does both (``Commands``).

The dialogue holds these and nothing concrete of ``voiceagent.home``: a test
gives it a hand-written ``Commands``, the daemon a ``HomeControl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

DEVICE_INTENTS = frozenset(
    "HassTurnOn HassTurnOff HassLightSet HassGetState HassClimateSetTemperature "
    "HassClimateGetTemperature".split()
)
"""Intents that act on (or ask about) the house: they need Home Assistant."""
LOCAL_INTENTS = frozenset(
    "HassNevermind HassStartTimer HassCancelTimer HassCancelAllTimers HassTimerStatus "
    "HassGetCurrentTime HassGetCurrentDate".split()
)
"""Intents answered here, with or without Home Assistant."""

@dataclass(frozen=True)
class Command:
    """A transcript that is a command this assistant carries out."""

    intent: str
    """Home Assistant's intent name (``HassTurnOn``)."""
    text: str
    """The transcript it was matched in."""
    slots: dict[str, Any] = field(default_factory=dict)
    """Slot name -> value (an entity id for ``name``, an area id for ``area``, a number...)."""
    spoken: dict[str, str] = field(default_factory=dict)
    """Slot name -> the words said for it ("kitchen light"), for the response."""
    unknown: dict[str, str] = field(default_factory=dict)
    """Slots whose words name nothing in the house ("garage lights")."""
    response: str = "default"
    """The key of Home Assistant's response template for this sentence."""

    @property
    def needs_house(self) -> bool:
        return self.intent in DEVICE_INTENTS

    @property
    def said(self) -> dict[str, Any]:
        """The slots as the response templates read them: the words said, where there
        are any ("five" minutes, "kitchen light"), else the value."""
        return {k: (self.spoken.get(k) or v) for k, v in self.slots.items()}



@dataclass(frozen=True)
class Outcome:
    """What came of a command."""

    speech: str
    result: str
    """``done`` (carried out), ``answered`` (a question), ``failed`` (Home Assistant
    refused), ``unavailable`` (no connection), ``not_found`` (nothing by that name)."""
    targets: tuple[str, ...] = ()
    error: str | None = None
    follow_up: bool = False
    """Home Assistant's conversation agent expects an answer (``continue_conversation``):
    the user may reply without the wake word."""


class Commands(Protocol):
    def match(self, text: str) -> Command | None:
        """The command ``text`` is, or None. Pure and fast: speculation calls it."""
        ...

    def expected(self, command: Command) -> str | None:
        """What ``execute`` will most likely say, known before it runs (to synthesize
        it early); None where that depends on what happens."""
        ...

    async def execute(self, command: Command) -> Outcome:
        """Carry ``command`` out. Called once per committed turn, never speculatively."""
        ...

    @property
    def converses(self) -> bool:
        """Requests that are no command go to Home Assistant's conversation agent
        (``converse``), not to the LLM."""
        ...

    async def converse(self, text: str) -> Outcome:
        """Home Assistant's conversation agent's answer to ``text`` (it may act:
        call this once per committed turn)."""
        ...

    def cannot_act(self) -> str:
        """What to say instead of a reply that claims a device action nobody performed."""
        ...
