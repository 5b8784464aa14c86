"""What the user is saying: the audio of one utterance and the state of the work
done on it. ``Listening`` fills it; the interruption and the coordinator read it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from voiceagent.dialogue.turn import Turn
from voiceagent.home.protocol import Command


@dataclass(eq=False)
class Utterance:
    turn: int
    """The turn number it will be answered as."""
    frames: list[np.ndarray]
    """Its audio so far, one block per frame, from the pre-roll before the onset."""
    start_t: float = 0.0
    """When the user started speaking (seconds, the onset)."""
    end_t: float | None = None
    """When the user stopped speaking (seconds), once the utterance has ended."""
    ended: bool = False
    addressed: bool = False
    """The wake word gate admitted it once: it stays a request (a later wake word
    may be used up by another utterance meanwhile)."""
    version: int = 0
    """Bumped when speech resumes after a pause: results of older versions are stale."""
    final_task: asyncio.Task[None] | None = None
    """The final transcript of the current pause being made."""
    final_text: str | None = None
    """The final transcript of the current pause, the wake word trimmed."""
    heard_text: str = ""
    """The same as the recognizer wrote it."""
    turn_obj: Turn | None = None
    """The (speculative, until the end) turn answering the current pause's words."""
    last_partial_at: float = 0.0
    last_partial_text: str = ""
    ignored: str | None = None
    """Set to the verdict when it was said over a reply and is not an interruption."""
    peak_voice: float | None = None
    """The second stage's (Silero's) highest speech probability on its frames
    (None: no second stage)."""
    end_probability: float | None = None
    """The end-of-turn model's verdict on the current pause (None: not yet, or none)."""
    end_heard: bool = False
    """The end-of-turn model has answered (or failed) for the current pause."""
    words_probability: float | None = None
    """The LLM's probability that the message ends with the current pause's words."""
    command: Command | None = None
    """The current pause's words as a command of the house (None: not one)."""
    after: list[np.ndarray] = field(default_factory=list)
    """Once ended: the audio that followed, for as long as the user may go on
    with it (``rules.continuation``)."""
    continues: "Utterance | None" = None
    """The ended utterance this one may be the rest of, until its first
    transcript is judged; its audio starts with that one's."""
    passed_over: "Utterance | None" = None
    """The ended utterance this one was judged not to continue (a noise, a
    backchannel): judged again if the user goes on."""
    own_from: int = 0
    """Of ``frames``, the first of this stretch's own (with its pre-roll)."""
    onset_t: float = 0.0
    """When this stretch of speech began (``start_t`` of a continuation is its
    first part's)."""

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.float32)

    def has_voice(self, threshold: float) -> bool | None:
        """Did Silero take it for a voice (``peak_voice`` reached ``threshold``,
        ``vad.voice_probability``)? None when no Silero ran or the check is off (0)."""
        if self.peak_voice is None or threshold <= 0:
            return None
        return self.peak_voice >= threshold
