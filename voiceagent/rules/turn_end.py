"""Has the user finished their turn? How much silence to wait for before answering.

A fixed silence threshold is a bad trade: people pause for 300-800 ms in the
middle of a sentence, so a threshold that never cuts them off (~1 s) makes every
answer late, and one that answers fast (~300 ms) cuts them off. So the silence
needed is decided per pause, from two cues available a few hundred milliseconds
into it (the final transcript is started at the pause anyway):

- **the words**: a transcript that ends in a word a sentence cannot end on
  ("the", "to", "and", "about", "um", ...), or in a comma or an ellipsis, is
  unfinished whatever the voice does. This is robust and costs nothing.
- **the language model**: the chat LLM's probability that the user's message
  ends after these words (``ChatModel.end_probability``): below ~1% they are a
  fragment ("What is the capital on" when Whisper mishears "of"), which the
  word list cannot know. Nearly free: the reply needs those tokens evaluated.
- **the voice**: Smart Turn v3.2 (pipecat-ai, BSD-2), a Whisper-tiny encoder
  with a classifier trained on real speech, gives the probability that the turn
  is complete from the last 8 s of audio, intonation included. ~25-60 ms on
  2 cores. It is trained on human voices: on espeak-ng's synthetic prosody it is
  close to a coin toss, which is why it only ever shortens the wait when the
  words agree, and lengthens it only to ``unsure_ms``.

This module is the pure decision (``silence_needed_ms``); the model is
``voiceagent.stages.smart_turn``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnEndSettings:
    """Built from the config (``TurnConfig.end_settings``), its one source of defaults."""

    complete_ms: int
    """Silence that ends a turn both cues call complete (milliseconds)."""
    unsure_ms: int
    """Silence that ends a turn whose words look complete but whose voice does not."""
    unfinished_ms: int
    """Silence that ends a turn whose words are unfinished (the longest wait)."""
    doubtful_ms: int
    """Silence that ends a turn the language model takes for a fragment."""
    threshold: float
    """Smart Turn probability at or above which the voice says complete."""
    words_threshold: float
    """Language-model probability of the message ending below which it is doubtful."""
    fragment_threshold: float
    """...and below which it is unfinished."""


# Words an English sentence (a request to an assistant) does not end on: articles,
# prepositions, conjunctions, auxiliaries, possessives and fillers. A pause after
# one of them is a hesitation before the next content word. Words that often
# do end one are deliberately absent: "is" (where the station is), "do" (what
# should I do), "like" (what is it like), "from", "so", "that", "on" (turn the
# lights on), question words and auxiliaries.
UNFINISHED_WORDS = frozenset(
    """
    a an the my your his her our their some any every each
    to of for with about into onto than as in at and or but nor
    because if although though whether whose
    i'm i'd i'll we're you're they're
    um uh er erm uhm
    """.split()
)
_TRAILING = re.compile(r"(,|\.\.\.|…|-|—|;|:)\s*$")
_WORD = re.compile(r"[a-z']+")


def looks_unfinished(text: str) -> bool:
    """True if the words so far cannot be a complete turn."""
    stripped = text.strip()
    if not stripped:
        return False
    if _TRAILING.search(stripped):
        return True
    words = _WORD.findall(stripped.lower())
    return bool(words) and words[-1] in UNFINISHED_WORDS


def words_doubtful(words_probability: float | None, s: TurnEndSettings) -> bool:
    """The language model doubts that the message ends here."""
    return words_probability is not None and words_probability < s.words_threshold


def words_fragment(words_probability: float | None, s: TurnEndSettings) -> bool:
    """The language model is sure that the message does not end here."""
    return words_probability is not None and words_probability < s.fragment_threshold


def silence_needed_ms(
    text: str,
    probability: float | None,
    s: TurnEndSettings,
    words_probability: float | None = None,
    command: bool = False,
) -> int:
    """The silence after which this pause ends the turn.

    ``probability`` is the end-of-turn model's (None when there is no model or
    it failed): without it, looking complete by the words is only ``unsure``.
    ``words_probability`` is the language model's that the message ends here
    (None: not asked).

    Calibrated on real recordings (``voiceagent bench --corpus``): the word
    list never fired at a true end; the small LLM's doubt caught two real
    mid-sentence pauses nothing else did ("Drop. | the two", "comes back is |
    well") but also doubted one finished request in 21 ("7 of clubs."). Its
    probability tells the two apart by its size: where it was right it gave
    0.0012 or less (real and espeak, ten pauses) but once 0.0065, while
    finished turns it doubted scored 0.003-0.0098 (one real, three misheard
    espeak questions). So below ``fragment_threshold`` (0.001) the words are
    unfinished, and below ``words_threshold`` (0.01) only doubtful: waited
    ``doubtful_ms`` (600), longer than the pause it caught at 0.0065 (460 ms).
    Smart Turn scored 6 of 21 real true ends below 0.5
    (read speech, down to 0.005): it shortens the wait when it is sure, and its
    doubt costs only ``unsure_ms``. A premature end is not final: the user going
    on takes the reply back (``rules.continuation``).

    ``command``: the words are a whole command of the house ("turn on the
    office lights", matched by its intents, names included): finished, whatever
    the voice says. Commands are what people say to a house most, and their
    answer has no LLM in it, so the wait is most of what they wait for. If the
    user does go on ("... and the kitchen"), that is a continuation.
    """
    if looks_unfinished(text) or words_fragment(words_probability, s):
        return s.unfinished_ms
    if command:
        return s.complete_ms
    if words_doubtful(words_probability, s):
        return s.doubtful_ms
    if probability is not None and probability >= s.threshold:
        return s.complete_ms
    return s.unsure_ms
