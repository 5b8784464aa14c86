"""The conversation: frames in, turns out. A thin coordinator of four parts:

- ``Listening`` (the user's utterance, its pauses and when the turn ends),
- ``Interruption`` (speech over a reply: suspect, then confirm or reject),
- ``ReplyMaker`` (LLM, clauses, TTS for one turn),
- ``TurnLedger`` (the turns in flight; where they are cut and finished).

It runs on the event loop and is fed one VAD frame per audio block by a duplex
driver. The life of a turn: speech -> pause -> speculative transcript and reply
(held back) -> the end of the turn commits the reply (it plays); if the user
goes on speaking first, the speculation is discarded and leaves no trace. Speech
over a reply that plays is a barge-in, judged as one. ``say``, ``ask`` and
``stop`` are Home Assistant's commands.
"""

from __future__ import annotations

import logging

import numpy as np

from voiceagent.aio import TaskSet
from voiceagent.audio.convert import rms_db
from voiceagent.audio.speaker import PlaybackNotice, Speaker
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.dialogue.continuation import Continuation
from voiceagent.dialogue.history import History
from voiceagent.dialogue.interruption import Interruption
from voiceagent.dialogue.listening import Listening
from voiceagent.dialogue.reply import ReplyMaker
from voiceagent.dialogue.turn import Turn, TurnLedger
from voiceagent.dialogue.utterance import Utterance
from voiceagent.errors import Stage, StageError
from voiceagent.events import (
    AsrFinal, EndOfTurn, ErrorEvent, EventBus, Reason, RequestAccepted,
    SpeculationDiscarded, SpeechEnd, TextRequest, TurnEnd,
)
from voiceagent.home.protocol import Commands
from voiceagent.rules.endpointer import Decision
from voiceagent.rules.wake_gate import WakeGate
from voiceagent.stages.protocols import (
    ChatModel, EndOfMessage, EndOfTurnModel, PromptCache, SpeechDetector,
    SpeechProbability, Synthesizer, Transcriber, Transcript,
)
from voiceagent.stages.lane import Priority
from voiceagent.stages.workers import Workers

logger = logging.getLogger(__name__)


class Conversation:
    def __init__(
        self,
        cfg: Config,
        vad: SpeechDetector,
        transcriber: Transcriber,
        chat: ChatModel,
        synthesizer: Synthesizer,
        speaker: Speaker,
        bus: EventBus,
        clock: Clock,
        workers: Workers,
        second_stage: SpeechProbability | None = None,
        end_model: EndOfTurnModel | None = None,
        gate: WakeGate | None = None,
        prompt_cache: PromptCache | None = None,
        end_of_message: EndOfMessage | None = None,
        commands: Commands | None = None,
    ) -> None:
        self.cfg = cfg
        self.vad = vad
        self.speaker = speaker
        self.bus = bus
        self.clock = clock
        self.gate = gate
        """Decides which utterances are requests (the daemon's wake word); None: all."""
        self.commands = commands
        """Commands of the house (lights, timers), carried out without the LLM; None: none."""
        self.prompt_cache = prompt_cache
        """Prefills the LLM's cache with what the next prompt starts with; None: a
        backend that has none (a remote server)."""
        self.history = History(cfg.llm.max_history_turns)
        self.tasks = TaskSet(self._task_failed)
        self.workers = workers
        """The process's workers, shared with every other session: never shut down here."""
        self.llm_worker = workers.llm
        self.tts_worker = workers.tts
        self.turns = TurnLedger(bus, speaker, self.history, clock, on_exchange=self._prefill_next)
        self.replies = ReplyMaker(
            cfg, chat, synthesizer, self.llm_worker, self.tts_worker, self.history, clock, commands
        )
        self.second_stage = second_stage
        """Silero on every frame: confirms speech over a reply, and tells an
        utterance with no voice in it (``_voiceless``)."""
        self.interruption = Interruption(cfg, speaker, self.turns, bus, clock)
        self.listening = Listening(
            cfg, transcriber, bus, clock, self.history, self.tasks, self, workers,
            end_model=end_model, end_of_message=end_of_message, gate=gate,
            prefill=self._prefill if prompt_cache is not None else None, commands=commands,
        )
        self.continuation = Continuation(self.listening, self.interruption, speaker, self.turns, bus, clock)
        self._early_hold: int | None = None
        """Frames since a voice's first frame paused the output (None: it did not)."""
        self._early_hold_frames = -(-cfg.vad.start_ms // cfg.vad.frame_ms) + 2

    @property
    def idle(self) -> bool:
        """Nothing in progress: no utterance, no turn, no work, nothing playing."""
        return (
            self.listening.idle
            and self.turns.idle
            and not self.tasks
            and not self.speaker.busy
            and self.interruption.idle
        )

    # ------------------------------------------------------------------ input

    def on_block(self, block: np.ndarray, t: float) -> None:
        """One VAD frame of input captured at ``t`` seconds (after echo cancellation)."""
        level_db = rms_db(block)
        # Run on every frame, so its state follows the room and an onset is
        # scored with what came before it (~0.1 ms a frame).
        prob = self.second_stage.probability(block) if self.second_stage is not None else None
        is_speech = self.interruption.gate(level_db, self.vad.is_speech(block))
        decision, is_speech = self.listening.push(block, is_speech, level_db)
        self.interruption.count(self.listening.current, is_speech, prob)
        utt = self.listening.current
        if utt is not None and prob is not None and not utt.ended:
            utt.peak_voice = max(utt.peak_voice or 0.0, prob)
        self._hold_at_first_voice(decision, is_speech)
        match decision:
            case Decision.START:
                first = self.continuation.candidate(self.listening.onset_t())
                utt = self.listening.start(self.turns.new_id(), continues=first)
                if first is not None:
                    self.continuation.started()
                else:
                    self.interruption.suspect(utt)
            case Decision.PAUSE if utt is not None and self._voiceless(utt):
                # Ended now, so that words right after it (0.46 s, measured) are
                # an utterance of their own, not its continuation.
                utt.ignored = Reason.NOISE.value
                self.listening.endpointer.set_silence_needed(0)
            case Decision.PAUSE if utt is not None:
                self.interruption.paused(utt)
                self.listening.pause(utt)
            case Decision.RESUME if utt is not None:
                self._resumed(utt)
            case Decision.END if utt is not None:
                self._ended(utt)
            case Decision.NONE:
                self.listening.keep_listening()

    def _hold_at_first_voice(self, decision: Decision, is_speech: bool) -> None:
        """A voice over the output pauses it at its first frame, not only once the
        endpointer opens an utterance (``vad.start_ms`` later): an interruption
        early in a reply went quiet 170-250 ms after its onset, measured. If no
        utterance opens within ``start_ms`` and two frames, the output resumes;
        once one does, the barge-in and continuation rules decide (they hold or
        duck it themselves)."""
        if self._early_hold is not None:
            self._early_hold += 1
            if decision is Decision.START or self._early_hold > self._early_hold_frames:
                self._early_hold = None
                self.speaker.release()  # START: held again below, or ducked, as the rules say
            return
        if (
            is_speech and decision is Decision.NONE and not self.listening.endpointer.in_utterance
            and self.cfg.barge_in.enabled and self.cfg.barge_in.on_onset == "pause"
            and self.speaker.busy and not self.speaker.held
        ):
            self._early_hold = 0
            self.speaker.hold()

    def on_playback(self, notice: PlaybackNotice, t: float) -> None:
        self.turns.on_notice(notice, t)

    def _resumed(self, utt: Utterance) -> None:
        """The user went on after a pause: what was started on it is thrown away."""
        self.interruption.resumed(utt)
        self.continuation.resumed(utt)
        text = self.listening.resume(utt)
        if utt.turn_obj is not None:
            self.turns.discard(utt.turn_obj)
            utt.turn_obj = None
        self.bus.publish(SpeculationDiscarded(self.clock.now(), utt.turn, text))

    def _ended(self, utt: Utterance) -> None:
        ready = self.listening.end(utt)
        self.continuation.ended(utt)
        self.bus.publish(SpeechEnd(utt.end_t, utt.turn))  # type: ignore[arg-type]
        self.bus.publish(EndOfTurn(self.clock.now(), utt.turn))
        if ready:
            self._commit(utt)

    # --------------------------------------------------- what Listening heard

    def on_final(self, utt: Utterance, result: Transcript) -> None:
        """The transcript of a pause: judge it over a reply, and start the reply
        (speculatively, unless the turn has already ended)."""
        t = self.clock.now()
        if utt.continues is not None:
            self.continuation.judge(utt, utt.continues, result.text)
        self.interruption.judge(utt, result.text, result.logprob)
        turn = self.turns.open(utt.turn, utt.final_text or "")
        turn.command = utt.command
        turn.emit(AsrFinal(t, utt.turn, utt.heard_text))
        utt.turn_obj = turn
        # Not yet addressed (the wake word detector may answer late): _commit
        # asks again and starts the reply then.
        if self._answerable(utt) and self._addressed(utt):
            self._answer(turn)
        if utt.ended:
            self._commit(utt)

    def on_failed(self, utt: Utterance, err: StageError) -> None:
        logger.error("turn %d: %s", utt.turn, err)
        if utt.continues is not None:  # its first part is answered as it was
            utt.continues = None
            self.interruption.release()
        self.bus.publish(ErrorEvent(self.clock.now(), utt.turn, stage=err.stage, text=str(err)))
        self.listening.done(utt)
        self.interruption.forget(utt)
        self.bus.publish(TurnEnd(self.clock.now(), utt.turn, "", "", reason=Reason.ERROR))

    def min_silence_ms(self, utt: Utterance, ms: int) -> int:
        return self.interruption.min_silence_ms(utt, ms)

    def _answerable(self, utt: Utterance) -> bool:
        return (
            utt.ignored is None and not self.interruption.judging_short(utt) and bool(utt.final_text)
            and not self._voiceless(utt)
        )

    def _voiceless(self, utt: Utterance) -> bool:
        """No voice in it at all: measured, the step from a stream's digital silence
        into its room tone was taken for 100 ms of speech, Whisper made "It's a
        good time." of it, and its answer talked over the real command. Silero
        gave real voices 0.9-1.0 (43 recordings, also 25 dB quieter; espeak
        0.96+), that step 0.07, a dog's bark 0.15, a car horn 0.34. Over a reply,
        and as a continuation, the barge-in and continuation rules judge."""
        if utt.continues is not None or self.interruption.over_reply(utt):
            return False
        return utt.has_voice(self.cfg.vad.voice_probability) is False

    def _addressed(self, utt: Utterance) -> bool:
        """Is this utterance a request (wake word, follow-up, or talking over a reply)?"""
        if self.gate is None or utt.addressed:
            return True
        if self.interruption.over_reply(utt):
            return True  # the barge-in rules decide
        end = utt.end_t if utt.end_t is not None else self.clock.now()
        utt.addressed = self.gate.admits(utt.start_t, end)
        return utt.addressed

    def _commit(self, utt: Utterance) -> None:
        """The turn has ended: its reply plays, or it ends without one, and why."""
        self.listening.done(utt)
        self.interruption.settle(utt)
        addressed = self._addressed(utt)
        answering = addressed and self._answerable(utt)
        self.interruption.forget(utt)
        turn = utt.turn_obj
        if turn is None:
            return
        if not answering:
            turn.drop_reply()  # whatever was prepared must not be heard
        turn.commit()
        now = self.clock.now()
        if utt.ignored is not None:
            logger.info("turn %d: %s (%r), not answered", turn.id, utt.ignored, utt.heard_text)
            self.turns.finish(turn, now, "", Reason(utt.ignored))
        elif not addressed:
            logger.info("turn %d: no wake word (%r), not answered", turn.id, utt.heard_text)
            self.turns.finish(turn, now, "", Reason.NOT_ADDRESSED)
        elif not turn.user_text:
            if utt.heard_text.strip():
                logger.info("turn %d: the wake word alone (%r)", turn.id, utt.heard_text)
                self.turns.finish(turn, now, "", Reason.WAKE_WORD)
            else:
                logger.info("turn %d: no speech recognized", turn.id)
                self.turns.finish(turn, now, "", Reason.NO_SPEECH)
        else:
            if self.gate is not None:
                self.gate.accepted(utt.start_t)
            self.bus.publish(RequestAccepted(now, turn.id, turn.user_text))
            if not turn.answering:  # the wake word was heard only after the pause
                self._answer(turn)
            elif turn.generation_done:
                self.turns.generated(turn)
            # else: the reply task hands it over when it is done generating

    # -------------------------------------------------------- text commands

    def say(self, text: str) -> int:
        """Speak ``text`` as it is (an announcement): a turn of its own, no LLM.

        Like a spoken request, it replaces a reply that is playing. Returns the turn.
        """
        turn = self._text_turn("say", text, user_text="")
        turn.reply = text
        self._answer(turn, say=text)
        return turn.id

    def ask(self, text: str) -> int:
        """Answer ``text`` as if the user had said it; returns the turn."""
        turn = self._text_turn("ask", text, user_text=text)
        turn.command = self.commands.match(text) if self.commands is not None else None
        self._answer(turn)
        return turn.id

    def stop(self) -> int:
        """Stop the replies that are playing or committed to play (no more
        tokens, queued audio dropped, quiet at once).

        The history keeps what was heard, as after a barge-in. What the user is
        saying meanwhile is still listened to, and may still be answered. Returns
        how many replies stopped.
        """
        stopping = [t for i in self.turns.replying() if (t := self.turns.get(i)) is not None]
        for turn in stopping:
            self.turns.cut(turn, Reason.STOPPED)
        if stopping:
            # A reply held for suspected speech over it is gone: nothing is left
            # to hold, and what plays next (a say) must not wait for the verdict.
            self.interruption.release()
            logger.info("stopped %d repl%s", len(stopping), "y" if len(stopping) == 1 else "ies")
        return len(stopping)

    def truncate(self, turn: int, played_samples: int) -> None:
        """The listener heard only ``played_samples`` of ``turn``'s reply (a browser
        reports how far it really played): the history keeps only that."""
        heard = self.speaker.truncate(turn, played_samples)
        if heard is not None and self.history.truncate(turn, heard):
            self._prefill_next()  # the next prompt starts with the corrected history

    def _text_turn(self, command: str, text: str, user_text: str) -> Turn:
        self.stop()
        turn = self.turns.open(self.turns.new_id(), user_text)
        turn.commit()
        self.bus.publish(TextRequest(self.clock.now(), turn.id, command, text))
        return turn

    # ----------------------------------------------------------------- replies

    def _answer(self, turn: Turn, say: str | None = None) -> None:
        turn.start(self._reply(turn, say), self.tasks)

    async def _reply(self, turn: Turn, say: str | None) -> None:
        await self.replies.make(turn, say)
        self.turns.generated(turn)  # a speculative turn is handed over by _commit

    def _prefill_next(self) -> None:
        """An exchange was added to the history: the next turn's prompt starts with it."""
        self._prefill(self.history.prefix(self.cfg.llm.system_prompt), "")

    def _prefill(self, prefix: list[dict[str, str]], user_text: str) -> None:
        if self.prompt_cache is not None:  # a server backend has none to fill
            self.tasks.spawn(self._prefill_work(self.prompt_cache, prefix, user_text))

    async def _prefill_work(self, cache: PromptCache, prefix: list[dict[str, str]], user_text: str) -> None:
        try:
            await self.llm_worker.call(cache.prefill, prefix, user_text, priority=Priority.OPTIONAL)
        except StageError as err:  # only an optimisation; the next turn will say more
            logger.warning("LLM prefill failed: %s", err)

    # ---------------------------------------------------------------- lifecycle

    def _task_failed(self, err: BaseException, turn: int) -> None:
        logger.error("turn %d: conversation task failed", turn, exc_info=err)
        self.bus.publish(ErrorEvent(self.clock.now(), turn, stage=Stage.PIPELINE, text=repr(err)))

    async def aclose(self) -> None:
        """Cancel everything in flight and wait for it."""
        self.interruption.release()
        self.turns.close()
        await self.tasks.aclose()
