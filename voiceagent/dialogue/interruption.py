"""Speech over a reply: suspected at its onset, then confirmed or rejected.

User speech that starts while a reply plays (judged per frame by ``rules.bargein``:
webrtcvad, a second-stage VAD and the echo level must agree) pauses the reply at
once (or ducks it). It is then either confirmed as an interruption (the reply's
turns are cut: the history keeps what was played) and answered as the next
turn, or rejected as noise, a backchannel or echo, and the reply resumes where
it paused. Pausing at once rather than waiting for proof is what makes the reply
go quiet within ~300 ms while a cough or an "mm-hmm" still cannot kill it.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace

import numpy as np

from voiceagent.audio.speaker import Speaker
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.dialogue.turn import TurnLedger, TurnState
from voiceagent.dialogue.utterance import Utterance
from voiceagent.events import BargeIn, BargeInRejected, BargeInSuspected, EventBus, Reason
from voiceagent.rules.bargein import (
    Verdict,
    confirms_by_duration,
    counts_as_speech,
    is_clearly_noise,
    is_user_speech,
    judge,
)
from voiceagent.rules.echo_residual import EchoResidual

logger = logging.getLogger(__name__)


class _State(enum.Enum):
    OPEN = "open"
    """The reply is paused (or ducked) until the speech is judged."""
    REJECTED = "rejected"
    CONFIRMED = "confirmed"


@dataclass(eq=False)
class _Suspicion:
    """An utterance that started while a reply was playing (or about to)."""

    utt: Utterance
    replies: list[int]
    """The turns whose replies it talks over."""
    state: _State = _State.OPEN
    voiced_ms: int = 0
    """Milliseconds of it that passed the barge-in speech gate."""
    agreed_ms: int = 0
    """Of those, milliseconds the second stage also took for speech."""
    peak_probability: float | None = None
    """The second stage's highest speech probability on it (None: no second stage)."""
    short_text: str | None = None
    """The transcript of the current pause when it was judged too short to tell
    (``Verdict.SHORT``): the reply stays paused until the user goes on (judged
    again at the next pause) or the pause ends the utterance (noise)."""


class Interruption:
    def __init__(
        self,
        cfg: Config,
        speaker: Speaker,
        ledger: TurnLedger,
        bus: EventBus,
        clock: Clock,
    ) -> None:
        self.cfg = cfg.barge_in
        # The stop phrases live with the turn rules (a continuation that starts
        # with one interrupts too); speech over a reply that starts with one is
        # never taken for garbled echo.
        self.settings = replace(cfg.barge_in.settings(), stop_phrases=tuple(cfg.turn.stop_phrases))
        self.frame_ms = cfg.vad.frame_ms
        self.speaker = speaker
        self.ledger = ledger
        self.bus = bus
        self.clock = clock
        self._sus: _Suspicion | None = None
        self.residual = EchoResidual(cfg.barge_in.echo_margin_db)

    @property
    def idle(self) -> bool:
        return self._sus is None

    def over_reply(self, utt: Utterance) -> bool:
        """Was ``utt`` said over a reply (the barge-in rules judge it, not the wake word)?"""
        return self._sus is not None and self._sus.utt is utt

    def judging_short(self, utt: Utterance) -> bool:
        """Is ``utt`` held as too short to tell, until it goes on or ends?"""
        return self.over_reply(utt) and self._sus.short_text is not None  # type: ignore[union-attr]

    # ---------------------------------------------------------------- per frame

    def gate(self, level_db: float, vad: bool) -> bool:
        """Is this frame speech (see ``rules.bargein``)?

        Outside replies it is webrtcvad's verdict alone; during one, frames that
        do not stand out of the echo are not speech.
        """
        # Gate until the reply's echo has died away too: the last word's echo
        # reaches the microphone after the turn has ended.
        echo_db = self.speaker.echo_level_db()
        if not self.cfg.enabled or (self._sus is None and not self.ledger.replying() and echo_db is None):
            return vad
        # The measured margin only where the canceller found no echo path: while
        # AEC3 converges on a real one, its residual changes too fast to measure
        # (a margin learnt in its first second let an echo leak through).
        margin = self.residual.margin_db() if self.speaker.echo_path is False else None
        speech = is_user_speech(vad, level_db, echo_db, self.settings, margin)
        if echo_db is not None and self._sus is None and not speech:
            # What the canceller leaves of the reply (a held reply is no measure).
            self.residual.observe(level_db, echo_db)
        return speech

    def count(self, utt: Utterance | None, is_speech: bool, prob: float | None) -> None:
        """One frame of ``utt`` (the utterance being listened to): long speech confirms."""
        sus = self._sus
        if sus is None or not is_speech or sus.utt is not utt:
            return
        sus.voiced_ms += self.frame_ms
        if prob is not None:
            sus.peak_probability = max(sus.peak_probability or 0.0, prob)
        if counts_as_speech(prob, self.settings):
            sus.agreed_ms += self.frame_ms
        if sus.state is _State.OPEN and confirms_by_duration(sus.agreed_ms, self.settings):
            self._confirm(sus)

    # ------------------------------------------------------ the utterance's life

    def suspect(self, utt: Utterance) -> None:
        """``utt`` began: if a reply is playing, hold it until the speech is judged."""
        replies = self.ledger.replying()
        if not self.cfg.enabled or not replies:
            return
        if self._sus is None or self._sus.utt is not utt:
            self._sus = _Suspicion(utt, replies)
        self._sus.state = _State.OPEN
        utt.ignored = None
        self._disturb()
        self.bus.publish(BargeInSuspected(self.clock.now(), replies[0], by_turn=utt.turn))

    def paused(self, utt: Utterance) -> None:
        """``utt`` paused: a sound the second stage never took for a voice (a knock)
        is rejected now, without waiting for its transcript."""
        sus = self._sus
        if self.over_reply(utt) and sus.state is _State.OPEN:  # type: ignore[union-attr]
            if is_clearly_noise(sus.peak_probability, self.settings):  # type: ignore[union-attr]
                self._reject(sus, Verdict.NOISE, "")  # type: ignore[arg-type]

    def resumed(self, utt: Utterance) -> None:
        sus = self._sus
        if sus is not None and sus.utt is utt:
            sus.short_text = None
            if sus.state is _State.REJECTED:
                self.suspect(utt)  # more than a backchannel after all: judge it again

    def judge(self, utt: Utterance, text: str, logprob: float | None) -> None:
        """The transcript of ``utt``'s pause is known: an interruption or not?"""
        sus = self._sus
        if sus is None or sus.utt is not utt or sus.state is not _State.OPEN:
            return
        played = " ".join(t.reply for i in sus.replies if (t := self.ledger.get(i)) is not None)
        verdict = judge(text, sus.voiced_ms, played, self.settings, logprob)
        if verdict is Verdict.INTERRUPTION:
            self._confirm(sus)
        elif verdict is Verdict.SHORT and not utt.ended:
            # A fast final transcript lands inside a comma pause ("Wait, | what
            # is..."): resuming the reply now would be heard for the ~100 ms
            # until the user goes on. A knock the second stage never took for a
            # voice was rejected at the pause already (is_clearly_noise).
            sus.short_text = text
        else:
            self._reject(sus, Verdict.NOISE if verdict is Verdict.SHORT else verdict, text)

    def min_silence_ms(self, utt: Utterance, ms: int) -> int:
        """How long ``utt``'s pause must last to end it, given that ``ms`` would do
        on its own: over a reply, AEC3's double-talk suppression blurs the words (a
        "Wait," before a comma pause came out as a confident "Wait.") and the reply
        is held meanwhile, so a short pause must not split it."""
        return max(ms, self.cfg.end_silence_ms) if self.over_reply(utt) else ms

    def settle(self, utt: Utterance) -> None:
        """``utt`` is over: words held as too short to tell were all there was (noise)."""
        sus = self._sus
        if self.judging_short(utt) and sus.state is _State.OPEN:  # type: ignore[union-attr]
            self._reject(sus, Verdict.NOISE, sus.short_text or "")  # type: ignore[arg-type, union-attr]

    def forget(self, utt: Utterance) -> None:
        sus = self._sus
        if sus is not None and sus.utt is utt:
            if sus.state is _State.OPEN:
                self.release()
            self._sus = None

    def release(self) -> None:
        """The output plays at its own level again (nothing is being judged, or the
        replies that were held are gone)."""
        self.speaker.release()
        self.speaker.duck(0.0)

    # ----------------------------------------------------------------- verdicts

    def _disturb(self) -> None:
        match self.cfg.on_onset:
            case "pause":
                self.speaker.hold()
            case "duck":
                self.speaker.duck(self.cfg.duck_db)

    def _confirm(self, sus: _Suspicion) -> None:
        """Stop the replies for good: no more tokens, no queued audio, quiet now."""
        sus.state = _State.CONFIRMED
        now = self.clock.now()
        for turn_id in sus.replies:
            turn = self.ledger.get(turn_id)
            if turn is None or turn.state is not TurnState.COMMITTED:
                continue  # it ended on its own meanwhile

            def announce(played_s: float, heard: str, turn_id: int = turn_id) -> None:
                self.bus.publish(BargeIn(now, turn_id, by_turn=sus.utt.turn, played_s=played_s, heard=heard))

            self.ledger.cut(turn, Reason.INTERRUPTED, announce)
        self.release()
        logger.info("turn %d interrupted by turn %d", sus.replies[0], sus.utt.turn)

    def _reject(self, sus: _Suspicion, verdict: Verdict, text: str) -> None:
        """Not an interruption: the reply resumes where it paused."""
        sus.state = _State.REJECTED
        sus.utt.ignored = verdict.value
        self.release()
        self.bus.publish(BargeInRejected(self.clock.now(), sus.replies[0], sus.utt.turn, verdict.value, text))
