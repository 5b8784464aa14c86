"""Barge-in decisions: is this the user talking over the reply, and do we stop?

Pure logic, no clock and no models: the conversation feeds it per-frame values
(webrtcvad's verdict, the second-stage speech probability, input and echo
levels) and transcripts, and acts on what it returns.

The policy has two steps, because the two checks a voice assistant must pass
pull in opposite directions. The reply must go quiet within a few hundred
milliseconds of a real interruption, but a cough, an "mm-hmm" or the echo of its
own voice must not kill it, and none of those can be told apart in 300 ms:

1. **Suspect** at the onset of user speech during a reply (``is_user_speech``
   over the endpointer's start window): the reply pauses (or ducks) at once.
2. **Judge** the suspected speech: enough voiced time, as the second-stage VAD
   sees it (``counts_as_speech``), confirms it on its own
   (``confirms_by_duration``); shorter speech is judged when its transcript is
   ready (``judge``): noise, a backchannel or the assistant's own words leave the
   reply to resume where it paused, anything else stops it for good.

Pausing rather than only ducking also makes the policy robust to residual echo:
once the reply is paused there is no echo left to sustain a false suspicion.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from voiceagent.rules.echo_words import is_echo


class Verdict(enum.Enum):
    INTERRUPTION = "interruption"
    BACKCHANNEL = "backchannel"
    """Acknowledgement ("mm-hmm", "yeah"): the reply goes on."""
    NOISE = "noise"
    """No words recognized."""
    SHORT = "short"
    """Words, but too little voiced time to tell a word from a knock the
    recognizer made words of. Not final while the user may go on: a "Wait,"
    before a comma pause is this short too. Decided when the pause turns out to
    be the end of the utterance (then it is noise)."""
    UNCLEAR = "unclear"
    """Words the recognizer was guessing at: half-suppressed double talk, a hum."""
    ECHO = "echo"
    """The words are the reply's own, heard back through the microphone."""


@dataclass(frozen=True)
class BargeInSettings:
    """Built from the config (``BargeInConfig.settings``), its one source of defaults."""

    min_speech_ms: int
    """Suspected speech shorter than this (milliseconds voiced) is too short to
    be an interruption on its words alone (``Verdict.SHORT``)."""
    confirm_ms: int
    """Voiced milliseconds that confirm an interruption without waiting for words."""
    speech_threshold: float
    """Second-stage (Silero) speech probability, 0..1, for a frame to count as speech."""
    echo_margin_db: float
    """Input quieter than the reply's own level plus this (decibels) is echo."""
    backchannels: tuple[str, ...]
    """Words and phrases that acknowledge rather than interrupt."""
    stop_phrases: tuple[str, ...] = ()
    """Words that begin an interruption ("stop", "wait", "hold on"): speech that
    starts with one is never taken for garbled echo (``rules.echo_words``). The
    turn config holds them (``turn.stop_phrases``), shared with the continuation
    rules; ``dialogue.interruption`` fills them in."""
    # Measured constants of the policy, not settings:
    noise_probability: float = 0.1
    """Suspected speech whose second-stage probability never reached this is
    noise, rejected as soon as it stops, without waiting for a transcript.
    Silero stays below 0.05 on a noise burst but gives 0.1-0.3 even to a word
    that AEC3 half-suppressed in double talk."""
    min_logprob: float = -0.8
    """Transcripts of suspected speech less certain than this (Whisper's mean
    log-probability per token) are not taken for an interruption. Measured with
    tiny.en: "Wait." -0.45, "Wait, what is the capital of Spain?" -0.31, but an
    "mm-hmm" that AEC3 half-suppressed came out as "And then then." at -0.93."""


def is_user_speech(
    vad: bool, level_db: float, echo_db: float | None, settings: BargeInSettings, margin_db: float | None = None
) -> bool:
    """Might a frame captured while the reply plays hold the user's speech?

    This decides whether to pause the reply, so it must be quick and may be
    wrong. ``vad`` is webrtcvad's verdict on the echo-cancelled frame;
    ``level_db`` is that frame's level and ``echo_db`` the level of what the
    speaker played over the echo path's reach (None when it played nothing),
    both dBFS; ``margin_db`` is how far below the reply echo may lie (by default
    ``settings.echo_margin_db``; measured: ``rules.echo_residual``). No second stage here: during double talk AEC3 suppresses the
    user's onset by 10-30 dB, which leaves too little for Silero, while what is
    left still stands well above the residual echo.
    """
    if not vad:
        return False
    margin = settings.echo_margin_db if margin_db is None else margin_db
    if echo_db is not None and level_db < echo_db + margin:
        return False  # what is left after cancellation is far below the reply: echo
    return True


def counts_as_speech(probability: float | None, settings: BargeInSettings) -> bool:
    """Does the second stage agree that a suspected frame is speech?

    Only agreed frames count towards ``min_speech_ms`` and ``confirm_ms``: once
    the reply is paused there is no echo left, and Silero tells a cough or a
    knock from a voice reliably.
    """
    return probability is None or probability >= settings.speech_threshold


def confirms_by_duration(voiced_ms: int, settings: BargeInSettings) -> bool:
    """Sustained speech over the reply is an interruption, whatever it says."""
    return voiced_ms >= settings.confirm_ms


def is_clearly_noise(peak_probability: float | None, settings: BargeInSettings) -> bool:
    """Suspected speech that the second stage never took for a voice."""
    return peak_probability is not None and peak_probability < settings.noise_probability


def judge(
    text: str,
    voiced_ms: int,
    played_text: str,
    settings: BargeInSettings,
    logprob: float | None = None,
) -> Verdict:
    """The verdict on suspected speech once its transcript is known.

    ``voiced_ms`` is how long it passed ``is_user_speech``. ``played_text`` is
    what the reply had said so far: words that repeat it, even garbled, are the
    assistant hearing itself (``rules.echo_words``). Whisper's sound
    annotations ("[coughing]", "(laughs)") are not words. ``logprob`` is the
    recognizer's confidence (see ``min_logprob``).
    """
    words = words_of(re.sub(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*", " ", text))
    if not words:
        return Verdict.NOISE
    if voiced_ms < settings.min_speech_ms:
        return Verdict.SHORT
    if is_phrases(words, settings.backchannels):
        return Verdict.BACKCHANNEL
    if logprob is not None and logprob < settings.min_logprob:
        return Verdict.UNCLEAR
    stops = [words_of(p) for p in settings.stop_phrases]
    if is_echo(words, words_of(played_text), stops):
        return Verdict.ECHO
    return Verdict.INTERRUPTION


def words_of(text: str) -> list[str]:
    """Lower-case words, punctuation dropped; hyphenated words kept whole."""
    return re.findall(r"[a-z0-9']+(?:-[a-z0-9']+)*", text.lower())


def is_phrases(words: list[str], phrases: tuple[str, ...]) -> bool:
    """True if ``words`` are one or more of ``phrases`` in a row (backchannels:
    "yeah okay", "mm-hmm mm-hmm")."""
    split = [words_of(p) for p in phrases]
    # can[i]: words[i:] splits into phrases
    can = [False] * len(words) + [True]
    for i in range(len(words) - 1, -1, -1):
        can[i] = any(p and words[i : i + len(p)] == p and can[i + len(p)] for p in split)
    return can[0]
