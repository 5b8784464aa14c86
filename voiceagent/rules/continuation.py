"""Is speech soon after the end of a turn the same utterance going on?

People pause for breath, for a word, between the items of a list: 0.3-1.1 s
inside one sentence in the real recordings, and no end-of-turn policy that
answers in ~500 ms can wait out all of them. So a turn that ended on a pause
must be reversible: when the user speaks again within ``window_ms`` of their
last word, before the reply has said much, the reply is held at once and the
new words are judged on the transcript of *both* parts together (Whisper hears
"one, two" far better than a lone "two", which it wrote as ". . . ."):

- words that only add to the sentence: a **continuation**. The reply is
  withdrawn without a trace in the history, and the whole is answered as one
  turn;
- a stop phrase said as one ("wait", "no, stop", "hold on a second"): an
  **interruption** of the reply, answered on their own (the user wants the
  reply to stop, not to add words to the question). A sentence that merely
  starts with one goes on with the utterance: "You can change the brightness.
  | No colour changing though, but..." is one description, not a "no";
- a backchannel ("okay", "mm-hmm") once the reply was heard: the reply goes on;
- no words at all (a knock, a breath): the reply goes on, unless a voice was
  heard (Whisper may write a second list item as the first again).

Pure: the caller gives the times and the transcripts. Built from the config
(``TurnConfig.continuation_settings``), its one source of defaults.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from difflib import SequenceMatcher

from voiceagent.rules.bargein import is_phrases, words_of


class Verdict(enum.Enum):
    CONTINUATION = "continuation"
    INTERRUPTION = "interruption"
    BACKCHANNEL = "backchannel"
    NOISE = "noise"


@dataclass(frozen=True)
class ContinuationSettings:
    window_ms: int
    """Speech that starts within this many milliseconds of the end of the user's
    last word (the previous turn's speech end) may continue it (0: never).
    Beyond it the reply has been heard for a second or more: speech then answers
    or interrupts the reply, and is judged as a barge-in."""
    max_heard_ms: int
    """...and only while at most this much of the reply has been heard. A
    person reacts to speech within ~0.2-0.5 s: after half a second of the reply
    the user is answering it, not finishing their sentence."""
    min_speech_ms: int
    """New speech shorter than this is a noise: a knock or a breath that Whisper,
    hearing it after real words, may still give a word (``barge_in.min_speech_ms``)."""
    stop_phrases: tuple[str, ...]
    """Words that begin an interruption rather than a continuation."""
    backchannels: tuple[str, ...]
    """Words that acknowledge the reply (shared with the barge-in rules)."""


def may_continue(gap_ms: float, heard_ms: float, s: ContinuationSettings) -> bool:
    """Could speech starting ``gap_ms`` after the last word of the previous turn,
    with ``heard_ms`` of its reply heard, be the same utterance?"""
    return s.window_ms > 0 and 0 <= gap_ms <= s.window_ms and heard_ms <= s.max_heard_ms


def added_words(before: str, together: str) -> list[str]:
    """The words of ``together`` (the transcript of both parts) after those of
    ``before`` (the first part's own transcript).

    Whisper may write the first part differently once it hears the rest
    ("1." becomes "one,"), so this aligns the two rather than cutting at a fixed
    word count: what follows the last word matched is new.
    """
    a, b = words_of(before), words_of(together)
    if not a:
        return b
    blocks = [m for m in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks() if m.size]
    if not blocks:
        return b[len(a):]
    last = blocks[-1]
    return b[last.b + last.size:]


STOP_TAIL_WORDS = 2
"""Words after a stop phrase that still make it one ("wait a second", "stop it
now"); more, and it is the start of a sentence that goes on."""


def is_stop(added: list[str], stop_phrases: tuple[str, ...]) -> bool:
    """Are ``added`` a stop said as one: stop phrases only ("no, stop"), or one
    followed by at most ``STOP_TAIL_WORDS`` words?"""
    # The longest start of ``added`` that is stop phrases alone ("wait, stop").
    said = max((k for k in range(1, len(added) + 1) if is_phrases(added[:k], stop_phrases)), default=0)
    return said > 0 and len(added) - said <= STOP_TAIL_WORDS


def judge(
    added: list[str], reply_heard: bool, spoken_ms: float, s: ContinuationSettings, voiced: bool = False
) -> Verdict:
    """What the new words are, given whether any of the reply was heard, how
    long the new speech lasted and whether a voice detector (Silero) heard a
    voice in it."""
    if spoken_ms < s.min_speech_ms:
        return Verdict.NOISE
    if not added:
        # Whisper may write a lone list item the same as the one before ("one, |
        # two" came out as "1." again, measured): a voice that went on for this
        # long is the user going on, and answering both parts together loses nothing.
        return Verdict.CONTINUATION if voiced else Verdict.NOISE
    if is_stop(added, s.stop_phrases):
        return Verdict.INTERRUPTION
    # Before the reply is heard there is nothing to acknowledge: "okay, and
    # then..." is the user going on.
    if reply_heard and is_phrases(added, s.backchannels):
        return Verdict.BACKCHANNEL
    return Verdict.CONTINUATION
