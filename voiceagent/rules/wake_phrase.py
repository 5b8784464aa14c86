"""The wake word's pure rules: one detection per spoken wake word, from the
detector's chunk probabilities (``WakeTrigger``), and the wake phrase trimmed
from transcripts as Whisper writes it (``strip_wake_phrase``)."""

from __future__ import annotations

import difflib
import math
import re


class WakeTrigger:
    """One detection per spoken wake word, from the stream of chunk probabilities.

    Fires on the first chunk whose probability reaches ``threshold`` while armed,
    then stays quiet until both (a) ``hold_ms`` of audio have passed since it
    fired and (b) a chunk after that falls below the threshold. openWakeWord's
    probability stays high for several chunks after a phrase (its classifier
    sees the last 1.28 s) and can dip under the threshold for a chunk and come
    back, so falling below alone would count one "Hey Jarvis" twice; and while
    it stays high (the phrase repeated, a television) one detection is enough.

    Measured on espeak-ng's "Hey Jarvis, what is the capital of France?": 0.65,
    0.02, 0.51, 0.57, 0.97 on successive chunks. ``hold_ms``: milliseconds of
    audio; 0 re-arms on the first chunk below the threshold.

    Pure logic, counted in chunks of audio (``chunk_ms`` each: openWakeWord
    gives one probability per 80 ms), no clock.
    """

    def __init__(self, threshold: float, hold_ms: float = 1000.0, chunk_ms: int = 80) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        self.threshold = threshold
        self.hold_chunks = math.ceil(hold_ms / chunk_ms)
        self.reset()

    def update(self, probability: float) -> bool:
        """The next chunk's probability; True when this chunk is a new detection."""
        if self._since_fire is not None:
            self._since_fire += 1
            if self._since_fire < self.hold_chunks or probability >= self.threshold:
                return False
            self._since_fire = None  # re-armed; this chunk is below the threshold
            return False
        if probability >= self.threshold:
            self._since_fire = 0
            return True
        return False

    @property
    def armed(self) -> bool:
        return self._since_fire is None

    def reset(self) -> None:
        self._since_fire: int | None = None
        """Chunks since the last detection; None: armed."""


# ------------------------------------------------------------ transcripts

_WORD = re.compile(r"[\w']+")
_LEADING = re.compile(r"^[\s,.;:!?'\u2018\u2019\u2026\-\u2013\u2014]+")

NAME_CUTOFF = 0.65
"""difflib ratio from which a transcript word counts as the phrase's last word
(the name): "Jervis" 0.83, "Javis" 0.91, "Travis" 0.67, "Naboo" for "nabu" 0.67,
but not "Harvest" 0.62 or "Service" 0.46."""
WORD_CUTOFF = 0.5
"""The same for the words before the name ("hay" for "hey" 0.67)."""
FILLERS = frozenset(
    {"a", "ah", "ay", "eh", "hey", "hi", "hello", "oh", "ok", "okay", "uh", "um", "yo"}
)
"""Words Whisper writes for a garbled greeting ("A Jarvis", "Hi Jarvis", "Oh, Jarvis")."""


def _norm(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalnum())


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def strip_wake_phrase(text: str, phrase: str, heard: bool = False) -> str:
    """``text`` without the wake phrase it starts with, as Whisper writes it.

    The phrase's last word (the name: "jarvis") must appear among the first
    ``len(phrase words) + 1`` words, spelled closely enough (``NAME_CUTOFF``:
    "Jervis", "Travis"). Every word before it must be like one of the phrase's
    other words (``WORD_CUTOFF``) or a greeting filler (``FILLERS``), and there
    may be at most one more of them than the phrase has, so "Hey Jarvis",
    "Hey, Jarvis!", "Jarvis, ...", "A Jarvis ..." and "Okay, hey Jarvis" are
    trimmed while "Is Jarvis on?" and "Tell Jarvis ..." are not (the gate also
    strips follow-ups said without the wake word). Case and punctuation are
    ignored. Only the first match is removed.

    With ``heard`` (the detector heard the wake word in this utterance), a name
    Whisper misheard is removed too, when the phrase's other words come first
    and the name is one word set apart by punctuation: "Hey, nervous? Go
    somewhere" (measured on a real "Hey Jarvis") becomes "Go somewhere".

    Returns the rest without its leading spaces and punctuation, its first
    letter capitalised ("Hey Jarvis, what time is it?" -> "What time is it?");
    "" if the text is only the phrase; ``text`` unchanged if it does not start
    with the phrase or the phrase is empty.
    """
    words = [_norm(w) for w in phrase.split()]
    words = [w for w in words if w]
    if not words:
        return text
    *lead, name = words
    tokens = list(_WORD.finditer(text))
    for i, token in enumerate(tokens[: len(words) + 1]):
        if _similar(_norm(token.group()), name) < NAME_CUTOFF:
            continue
        for word in (_norm(t.group()) for t in tokens[:i]):
            if word not in FILLERS and all(_similar(word, p) < WORD_CUTOFF for p in lead):
                return text  # "Is Jarvis on?": a sentence about the name
        return _after(text, token)
    if heard and lead and len(tokens) > len(lead):
        said = [_norm(t.group()) for t in tokens[: len(lead)]]
        name_token = tokens[len(lead)]
        set_apart = text[name_token.end() : name_token.end() + 1] in (",", "?", "!", ".")
        if set_apart and all(_similar(w, p) >= WORD_CUTOFF for w, p in zip(said, lead)):
            return _after(text, name_token)
    return text


def _after(text: str, token: re.Match[str]) -> str:
    """What follows ``token``, without leading punctuation, its first letter capitalised."""
    rest = _LEADING.sub("", text[token.end() :])
    if rest and rest[0].islower():
        rest = rest[0].upper() + rest[1:]
    return rest
