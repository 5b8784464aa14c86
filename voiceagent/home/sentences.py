"""Sentences of our own beside Home Assistant's (the way HA's ``custom_sentences``
extend its agent), for what people say to a speaker that HA's English data has
no sentence for, and words Whisper writes that are not part of the command.

Each addition answers with one of HA's own intents and response templates, so
what is said and done is exactly what HA would say and do for its own wording.
"""

from __future__ import annotations

from typing import Any

SKIP_WORDS: dict[str, tuple[str, ...]] = {
    "en": (
        # Hesitations and openers Whisper keeps ("Um, turn on the light.").
        "um", "umm", "uh", "uhm", "er", "erm", "hmm", "mm", "oh", "okay", "ok", "hey", "alright", "all right",
        # Politeness and time words after the command ("... now, thanks").
        "now", "right now", "thanks", "thank you", "kindly", "just",
    ),
}
"""Words ignored wherever they stand, added to HA's own (please, can you, ...)."""

SENTENCES: dict[str, dict[str, list[dict[str, Any]]]] = {
    "en": {
        "HassTurnOn": [
            # "Turn on all the lights": HA turns off all of the house's, but has no sentence to
            # turn them all on; said to this assistant, it means its own area's, as "the lights".
            {"sentences": ["<turn> on <all> <light>", "<turn> <all> <light> on"],
             "slots": {"domain": "light"}, "requires_context": {"area": {"slot": True}}, "response": "lights_area"},
        ],
        "HassLightSet": [
            # "Dim the kitchen light to 20%": HA's verbs are set, change, turn up/down, make.
            {"sentences": ["(dim|brighten) [<the>] {name} [to] {brightness}[([ ]%)| percent]"],
             "requires_context": {"domain": ["light"]}, "response": "brightness"},
            {"sentences": [
                "(dim|brighten) [<the>] {area} <light> [to] {brightness}[([ ]%)| percent]",
                "(dim|brighten) [<the>] <light> <in> [<the>] {area} [to] {brightness}[([ ]%)| percent]",
            ], "slots": {"domain": "light"}, "response": "brightness"},
            {"sentences": ["(dim|brighten) [<the>] <light> [<here>] [to] {brightness}[([ ]%)| percent]"],
             "slots": {"domain": "light"}, "requires_context": {"area": {"slot": True}}, "response": "brightness"},
        ],
        "HassGetState": [
            # "Are the lights on in the kitchen?", "Is the light on in the kitchen?": HA has
            # only "are any (of the) lights on ...". "Is the kitchen light on?" stays HA's own
            # (a name, answered "Yes"), so the area comes after the light here, or with "are".
            {"sentences": [
                "are [<the>] {area} lights {on_off_states:state}",
                "are [<the>] lights {on_off_states:state} [<in>] [<the>] {area}",
                "are [<the>] lights [<in>] [<the>] {area} {on_off_states:state}",
                "is [<the>] light {on_off_states:state} [<in>] [<the>] {area}",
                "is [<the>] light [<in>] [<the>] {area} {on_off_states:state}",
            ], "slots": {"domain": "light"}, "response": "any"},
            {"sentences": [
                "(are [<the>] lights|is [<the>] light) {on_off_states:state} [<here>]",  # this area's
            ], "slots": {"domain": "light"}, "requires_context": {"area": {"slot": True}}, "response": "any"},
            # "Is the kitchen light turned on?"
            {"sentences": [
                "<is> [<the>] {name} (turned|switched) {on_off_states:state}",
            ], "requires_context": {"domain": ["light", "switch", "fan"]}, "response": "one_yesno"},
        ],
        "HassTimerStatus": [
            # "How much time is left?" with one timer running: HA wants "... on the timer".
            {"sentences": [
                "how much time [is] left",
                "how much time do i have [left]",
                "how long [is] left",
                "how much longer",
                "[is] [the|my] timer [still] running",
            ]},
        ],
    },
}
"""Intent data in HA's format, appended to the intents of the same name."""


def extend(data: dict[str, Any], language: str) -> dict[str, Any]:
    """``data`` (home-assistant-intents' dict for ``language``) with our additions."""
    data = dict(data)
    data["skip_words"] = [*data.get("skip_words", ()), *SKIP_WORDS.get(language, ())]
    intents = dict(data.get("intents", {}))
    for name, extra in SENTENCES.get(language, {}).items():
        if name in intents:
            intents[name] = {**intents[name], "data": [*intents[name].get("data", ()), *extra]}
    data["intents"] = intents
    return data
