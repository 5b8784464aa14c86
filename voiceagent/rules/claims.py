"""Does a sentence of the LLM's reply claim, or promise, an action in the house?

The LLM never acts: device commands are matched and carried out before it is
asked (``voiceagent.home``), so anything it says about having turned something
on is untrue. A small model says it anyway: asked "turn on the office lights"
with no house connected, SmolLM2 answered "The office lights are on." The
system prompt asks it not to; this check is what makes sure, clause by clause,
before a clause is spoken.

Pure and cheap (a few regular expressions per clause). It errs on the side of
catching: a false catch costs one honest "I can't do that", a miss a lie.
"""

from __future__ import annotations

import re

_DONE = (
    "turned switched set dimmed brightened lowered raised locked unlocked opened closed "
    "started stopped activated deactivated adjusted changed muted unmuted armed disarmed "
    "enabled disabled scheduled"
).split()
_DO = (
    "turn switch set dim brighten lower raise lock unlock open close start stop activate "
    "deactivate adjust change mute unmute arm disarm enable disable"
).split()
_DOING = (
    "turning switching setting dimming brightening lowering raising locking unlocking opening "
    "closing starting stopping activating deactivating adjusting changing muting unmuting "
    "arming disarming enabling disabling"
).split()
_THINGS = (
    "light lights lamp lamps fan fans heating heater thermostat tv television door doors lock "
    "blinds curtains shades music switch switches radio speaker alarm oven kettle garage ac "
    "air conditioning temperature"
).split()
_THING_WORDS = frozenset(_THINGS)
_STATES = "on off locked unlocked open opened closed shut running playing armed disarmed set".split()

_PATTERNS = [
    # "I turned on ...", "I've switched ...", "I have set ..."
    re.compile(rf"\bi(?:'ve| have)?(?: just| now| already)?\s+(?:{'|'.join(_DONE)})\b"),
    # "I'll turn on ...", "Let me switch ...", "I'm turning ..."
    re.compile(
        rf"\b(?:i'll|i will|let me|i'm going to|i am going to)(?:\s+(?:just|now|quickly|go ahead and|also))?"
        rf"\s+(?:{'|'.join(_DO)})\b"
    ),
    re.compile(rf"\bi(?:'m| am)\s+(?:now\s+)?(?:{'|'.join(_DOING)})\s+(?:on|off|up|down|the|your|it|all)\b"),
    # "... have been turned on", "... has been locked"
    re.compile(rf"\b(?:has|have|had)\s+been\s+(?:{'|'.join(_DONE)})\b"),
    # "The office lights are on.", "the door is now locked"
    re.compile(
        rf"\b(?:{'|'.join(_THINGS)})\b[\w\s']{{0,30}}?\b(?:is|are)\s+(?:now\s+)?(?:{'|'.join(_STATES)})\b"
    ),
    # "Turning on the lights." "Done."
    re.compile(rf"^(?:okay[,.!]?\s+|ok[,.!]?\s+|sure[,.!]?\s+|alright[,.!]?\s+)?(?:{'|'.join(_DOING)})\s+(?:on|off|up|down|the|your|it|all)\b"),
    re.compile(r"^(?:okay[,.!]?\s+|ok[,.!]?\s+|sure[,.!]?\s+)?(?:all\s+)?done\b"),
    # "Turned off the lights." (Home Assistant's own words, which the LLM copies from
    # the history); "set" is left out: "Set a goal" is an imperative as often.
    re.compile(
        rf"^(?:okay[,.!]?\s+|ok[,.!]?\s+|sure[,.!]?\s+|alright[,.!]?\s+)?"
        rf"(?:{'|'.join(w for w in _DONE if w != 'set')})\s+(?:on|off|up|down|the|your|it|all)\b"
    ),
    # "No, the kitchen is not on." (a state it cannot know: only Home Assistant does)
    re.compile(r"\b(?:is|are)\s+(?:now\s+|not\s+|still\s+|already\s+)*(?:switched\s+|turned\s+)?(?:on|off)\s*[.!]?$"),
]


_ENDINGS = (" on.", " done.", " turned on the lights.", " turn on the lights.")
"""What a sentence cut short could go on with to make a claim."""


def might_claim(text: str) -> bool:
    """Could the sentence that starts with ``text`` turn into a claim within a few
    words? Then it is held until it is whole: the first clause is cut after a few
    words for latency, and "The office lights are" + "on." (or "The office
    lights" + "are on.") is a claim neither half is. Narrow on purpose: a clause held is a gap in the reply, and "The
    ocean is a vast realm where light" must not wait for its full stop."""
    if any(claims_action(text + ending) for ending in _ENDINGS):
        return True
    # "The office lights" + "are on.": only where a thing of the house is named
    # ("The ocean is a" + "is on." would match the bare "is on." at the end).
    named = set(re.findall(r"[a-z]+", text.lower())) & _THING_WORDS
    return bool(named) and any(claims_action(text + e) for e in (" is on.", " are on."))


def claims_action(text: str) -> bool:
    """True if ``text`` says (or promises) that something in the house was done."""
    lowered = " ".join(text.lower().replace("\u2019", "'").split())
    if lowered.endswith("?"):
        return False  # "Would you like me to turn it on?" claims nothing
    return any(p.search(lowered) for p in _PATTERNS)
