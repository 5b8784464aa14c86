"""Speech soon after a turn ended: the rest of its utterance, or something new?

The pure decision is ``rules.continuation``; this carries it out on the
conversation. A continuation withdraws the earlier turn's reply (the history
never sees it) and lets the new utterance, which starts with the earlier one's
audio, be answered for both; an interruption ("wait, stop") cuts the reply
like a barge-in and is answered on its own words; noise or a backchannel lets
the reply go on.
"""

from __future__ import annotations

import logging

from voiceagent.audio.speaker import Speaker
from voiceagent.clock import Clock
from voiceagent.dialogue.interruption import Interruption
from voiceagent.dialogue.listening import Listening
from voiceagent.dialogue.turn import TurnLedger, TurnState
from voiceagent.dialogue.utterance import Utterance
from voiceagent.events import ContinuationJudged, EventBus, Reason, TurnEnd
from voiceagent.rules.bargein import words_of
from voiceagent.rules.continuation import Verdict, added_words, judge, may_continue

logger = logging.getLogger(__name__)


def separate(utt: Utterance) -> None:
    """``utt`` turned out not to continue the utterance before it: drop that one's audio."""
    del utt.frames[: utt.own_from]
    utt.own_from = 0
    utt.start_t = utt.onset_t


def _open(first: Utterance) -> bool:
    """Is ``first``'s turn still to be answered or being answered (not done)?"""
    turn = first.turn_obj
    return turn is None or turn.state in (TurnState.SPECULATIVE, TurnState.COMMITTED)


class Continuation:
    def __init__(
        self,
        listening: Listening,
        interruption: Interruption,
        speaker: Speaker,
        turns: TurnLedger,
        bus: EventBus,
        clock: Clock,
    ) -> None:
        self.listening = listening
        self.settings = listening.continuation
        self.interruption = interruption
        self.speaker = speaker
        self.turns = turns
        self.bus = bus
        self.clock = clock

    def candidate(self, onset_t: float) -> Utterance | None:
        """The ended utterance that speech starting at ``onset_t`` may continue, if any."""
        first = self.listening.last_ended
        if first is None or first.ignored is not None or self.interruption.over_reply(first):
            return None
        if not _open(first) or first.end_t is None:
            return None  # answered and done, or dropped: a new turn
        turn = first.turn_obj
        gap_ms = (onset_t - first.end_t) * 1000
        # What had been heard when the words began, not when the VAD was sure of
        # them (a few frames, or ~300 ms over a loud reply, later): measured, a
        # user who went on 0.22 s into the reply was confirmed at 0.54 s, over
        # the limit, and the words before the pause went to an interrupted turn.
        late_s = max(0.0, self.clock.now() - onset_t)
        heard_ms = 0.0 if turn is None else 1000 * max(0.0, self.speaker.played_s(turn.id) - late_s)
        return first if may_continue(gap_ms, heard_ms, self.settings) else None

    def started(self) -> None:
        """Speech began that may continue the last turn: quiet at once, as for a
        barge-in, until its words are known."""
        self.speaker.hold()

    def judge(self, utt: Utterance, first: Utterance, text: str) -> None:
        """The first transcript of speech that may continue ``first``: is it its rest?"""
        utt.continues = None
        turn = first.turn_obj
        if first.final_text is None:
            # Its own transcript is not ready: nothing to tell the new words by,
            # and nothing of its reply was heard.
            added = words_of(text)
            verdict = Verdict.CONTINUATION if added else Verdict.NOISE
        else:
            added = added_words(first.heard_text, text)
            heard = turn is not None and bool(self.speaker.heard_text(turn.id))
            spoken_ms = 1000 * (self.listening.voiced_until() - utt.onset_t)
            voiced = utt.has_voice(self.listening.cfg.vad.voice_probability) is True
            verdict = judge(added, heard, spoken_ms, self.settings, voiced)
        gap = utt.onset_t - (first.end_t or utt.onset_t)
        self.bus.publish(ContinuationJudged(self.clock.now(), utt.turn, first.turn, verdict.value, " ".join(added), gap))
        logger.info("turn %d after turn %d: %s (%r)", utt.turn, first.turn, verdict.value, " ".join(added))
        match verdict:
            case Verdict.CONTINUATION:
                self._withdraw(first)
            case Verdict.INTERRUPTION:
                self._cut_before(first)
                separate(utt)
                utt.final_text = utt.heard_text = " ".join(added)
            case _:  # noise or a backchannel: the reply goes on, unless the user does
                utt.ignored, utt.passed_over = verdict.value, first
                if verdict is Verdict.NOISE and not utt.ended:
                    # Held until the sound turns out to be all there is: resumed
                    # at once, the reply's echo made AEC3 (still learning that
                    # there is none) suppress the words that followed the click.
                    return
        self.interruption.release()

    def ended(self, utt: Utterance) -> None:
        """``utt`` ended, taken for a noise after ``first``: the user may still go on
        with ``first`` (measured: the click ended 0.26 s before the words resumed)."""
        first = utt.passed_over
        if first is not None and utt.ignored is not None:
            first.after = utt.frames[len(first.frames) :]
            self.listening.last_ended = first
            self.interruption.release()

    def resumed(self, utt: Utterance) -> None:
        """``utt`` goes on after a pause. Taken for a noise after ``first`` (a blip
        inside the user's pause, measured: a click 0.26 s into a 0.62 s pause
        opened the utterance and the words after the pause were dropped with it),
        it is judged again, with the reply held meanwhile."""
        first = utt.passed_over
        if first is None:
            return
        utt.passed_over = None
        if not _open(first):
            separate(utt)  # the reply has ended meanwhile: this is a new turn
            utt.ignored = None
            return
        utt.ignored, utt.continues = None, first
        self.started()

    def _withdraw(self, first: Utterance) -> None:
        """``first`` goes on in the next turn: its reply, heard or not, leaves no trace."""
        self.listening.drop(first)
        self.interruption.forget(first)
        turn = first.turn_obj
        if turn is None:  # its transcript was not even ready
            self.bus.publish(TurnEnd(self.clock.now(), first.turn, "", "", reason=Reason.CONTINUED))
        elif turn.state is TurnState.COMMITTED:
            self.turns.cut(turn, Reason.CONTINUED)
        else:
            turn.drop_reply()
            self.turns.finish(turn, self.clock.now(), "", Reason.CONTINUED)

    def _cut_before(self, first: Utterance) -> None:
        """Speech soon after ``first`` stops its reply ("wait, stop"): cut like a
        barge-in; the history keeps ``first`` with what was heard of the reply."""
        turn = first.turn_obj
        if turn is None:
            self.listening.drop(first)
            self.interruption.forget(first)
            self.bus.publish(TurnEnd(self.clock.now(), first.turn, first.final_text or "", "", reason=Reason.INTERRUPTED))
            return
        if turn.state is TurnState.SPECULATIVE:
            turn.commit()
        self.turns.cut(turn, Reason.INTERRUPTED)
