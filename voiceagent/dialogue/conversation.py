"""The conversation: frames in, turns out.

Runs on the event loop and is fed one VAD frame per audio block by a duplex
driver. Per frame it does only cheap work (VAD, endpointer, buffering); the three
models run on their own worker threads.

The latency trick is to overlap: when the user has been silent for
``vad.speculate_ms``, the final transcript is started on what was said so far,
and as soon as it exists the reply (LLM, then TTS of the first clause) starts
too, as a speculative turn. When the endpointer confirms the end of the turn
(``vad.trailing_silence_ms``), the turn is committed and its audio, usually ready
by then, plays at once. If the user goes on speaking, the speculative work is
thrown away and done again at the next pause.

How long a pause must last to end the turn is judged per pause (``turn_end``):
once the speculative transcript exists and the end-of-turn model has heard the
pause, the endpointer is told to end after ``complete``, ``unsure`` or
``unfinished`` silence, so a finished question is answered after a short
silence and a hesitation after "the" is waited out.

Full duplex: it keeps listening while it speaks. User speech that starts over a
reply (judged by ``bargein``: a second-stage VAD and the echo level must agree)
pauses the reply at once; it is then either confirmed as an interruption (the
reply's turn is cancelled, its queued audio flushed, the history keeps what was
played) and answered as the next turn, or rejected as noise, a backchannel or
echo, and the reply resumes where it paused.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from voiceagent.audio.convert import resample, rms_db, trim_leading_silence
from voiceagent.audio.speaker import NoticeKind, PlaybackNotice, Speaker
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.dialogue.history import Exchange, History
from voiceagent.dialogue.turn import Turn, TurnState
from voiceagent.errors import Stage, StageError
from voiceagent.events import (
    AsrFinal,
    AsrPartial,
    BargeIn,
    BargeInRejected,
    BargeInSuspected,
    EndOfTurn,
    ErrorEvent,
    EventBus,
    LlmFirstClause,
    LlmFirstToken,
    PlaybackEnd,
    PlaybackStart,
    Reason,
    SpeculationDiscarded,
    SpeechEnd,
    SpeechStart,
    TextRequest,
    TtsFirstAudio,
    TurnEnd,
    TurnEndJudged,
)
from voiceagent.rules.bargein import (
    Verdict,
    confirms_by_duration,
    counts_as_speech,
    is_clearly_noise,
    is_user_speech,
    judge,
)
from voiceagent.rules.endpointer import Decision, Endpointer
from voiceagent.rules.noise_floor import NoiseFloor
from voiceagent.rules.turn_end import (
    silence_needed_ms,
    words_unfinished,
)
from voiceagent.rules.wake_gate import WakeGate
from voiceagent.stages.protocols import (
    ChatModel,
    EndOfMessage,
    EndOfTurnModel,
    PromptCache,
    SpeechDetector,
    SpeechProbability,
    Synthesizer,
    Transcriber,
)
from voiceagent.stages.workers import ModelWorker, WorkerFactory

logger = logging.getLogger(__name__)


@dataclass
class _Utterance:
    """The audio of what the user is saying, and the work started on it."""

    turn: int
    frames: list[np.ndarray]
    start_t: float = 0.0
    """When the user started speaking (seconds, the onset)."""
    end_t: float | None = None
    """When the user stopped speaking (seconds), once the utterance has ended."""
    addressed: bool = False
    """The wake word gate admitted it once: it stays a request (a later wake word
    may be used up by another utterance meanwhile)."""
    version: int = 0
    """Bumped when speech resumes after a pause: results of older versions are stale."""
    ended: bool = False
    final_task: asyncio.Task[None] | None = None
    final_text: str | None = None
    """The final transcript of the current pause, the wake word trimmed."""
    heard_text: str = ""
    """The same as the recognizer wrote it."""
    turn_obj: Turn | None = None
    last_partial_at: float = 0.0
    last_partial_text: str = ""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    ignored: str | None = None
    """Set to the verdict when it was said over a reply and is not an interruption."""
    end_probability: float | None = None
    """The end-of-turn model's verdict on the current pause (None: not yet, or none)."""
    end_heard: bool = False
    """The end-of-turn model has answered (or failed) for the current pause."""
    words_probability: float | None = None
    """The LLM's probability that the message ends with the current pause's words."""


class _Suspicion(enum.Enum):
    OPEN = "open"
    """The reply is paused (or ducked) until the speech is judged."""
    REJECTED = "rejected"
    CONFIRMED = "confirmed"


@dataclass
class _BargeIn:
    """An utterance that started while a reply was playing (or about to)."""

    utt: _Utterance
    replies: list[int]
    """The turns whose replies it talks over."""
    state: _Suspicion = _Suspicion.OPEN
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
        second_stage: SpeechProbability | None = None,
        end_model: EndOfTurnModel | None = None,
        gate: WakeGate | None = None,
        workers: WorkerFactory = ModelWorker,
        prompt_cache: PromptCache | None = None,
        end_of_message: EndOfMessage | None = None,
    ) -> None:
        self.cfg = cfg
        self.gate = gate
        """Decides which utterances are requests (the daemon's wake word); None: all."""
        self.vad = vad
        self.transcriber = transcriber
        self.chat = chat
        self.prompt_cache = prompt_cache
        """Prefills the LLM's cache with what the next prompt starts with; None: a
        backend that has none (a remote server)."""
        self.end_of_message = end_of_message
        """The LLM's probability that the user's words are a whole message; None:
        the words and the voice alone judge each pause."""
        self.synthesizer = synthesizer
        self.speaker = speaker
        self.bus = bus
        self.clock = clock
        self.rate = cfg.audio.sample_rate
        self.frame_s = cfg.vad.frame_ms / 1000
        self.history = History(cfg.llm.max_history_turns)
        self.endpointer = Endpointer(cfg.endpointer_settings())
        # Partials get their own thread so a partial that is still running when
        # the user stops never delays the final transcript behind it.
        self.asr_worker = workers("asr")
        self.partial_worker = workers("asr-partial")
        self.llm_worker = workers("llm")
        self.tts_worker = workers("tts")
        self.end_worker = workers("turn-end")
        self.end_model = end_model
        self.turn_end = cfg.turn.end_settings()
        pre_roll = -(-cfg.vad.pre_roll_ms // cfg.vad.frame_ms)
        self._recent: deque[np.ndarray] = deque(maxlen=pre_roll + 64)
        self._utt: _Utterance | None = None
        """The utterance being listened to."""
        self._closing: dict[int, _Utterance] = {}
        """Ended utterances whose final transcript is still being computed."""
        self._turn_counter = 0
        self._turns: dict[int, Turn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pre_roll_frames = pre_roll
        self.barge_in = cfg.barge_in.settings()
        self.second_stage = second_stage
        self.noise_floor = NoiseFloor(cfg.vad.end_margin_db)
        self._gating = False
        self._suspicion: _BargeIn | None = None
        self._stopped: dict[int, str] = {}
        """Turns stopped by ``stop()`` whose output has not gone quiet yet -> what was heard."""
        self._paused_at: dict[int, float] = {}
        """Turn -> when its output was paused (the real stop, if it never resumes)."""

    # ------------------------------------------------------------------ input

    @property
    def idle(self) -> bool:
        return (
            self._utt is None
            and not self._closing
            and not self.endpointer.in_utterance
            and not self._turns
            and not self._tasks
            and not self.speaker.busy
            and self._suspicion is None
        )

    def on_block(self, block: np.ndarray, t: float) -> None:
        """One VAD frame of input captured at ``t`` seconds (after echo cancellation)."""
        level_db = rms_db(block)
        is_speech, prob = self._gate(block, level_db, self.vad.is_speech(block))
        voiced = self.noise_floor.is_voiced(is_speech, level_db)  # also tracks the floor
        if self.endpointer.in_utterance:  # onsets stay webrtcvad's alone
            is_speech = voiced
        self._recent.append(block)
        if self._utt is not None and not self._utt.ended:
            self._utt.frames.append(block)
        decision = self.endpointer.push(is_speech)
        sus = self._suspicion
        if sus is not None and is_speech and sus.utt is self._utt:
            sus.voiced_ms += self.cfg.vad.frame_ms
            if prob is not None:
                sus.peak_probability = max(sus.peak_probability or 0.0, prob)
            if counts_as_speech(prob, self.barge_in):
                sus.agreed_ms += self.cfg.vad.frame_ms
            if sus.state is _Suspicion.OPEN and confirms_by_duration(sus.agreed_ms, self.barge_in):
                self._confirm_barge_in(sus)
        match decision:
            case Decision.START:
                self._on_start()
            case Decision.PAUSE:
                self._on_pause()
            case Decision.RESUME:
                self._on_resume()
            case Decision.END:
                self._on_end()
            case Decision.NONE:
                if self._utt is not None and self.endpointer.in_utterance:
                    self._maybe_partial()

    def on_playback(self, notice: PlaybackNotice, t: float) -> None:
        turn = self._turns.get(notice.turn)
        match notice.kind:
            case NoticeKind.START:
                self.bus.publish(PlaybackStart(t, notice.turn))
                return
            case NoticeKind.PAUSE:
                self._paused_at[notice.turn] = t
                return
            case NoticeKind.RESUME:
                self._paused_at.pop(notice.turn, None)
                return
        # A flushed turn went quiet when it was paused, not when it was dropped.
        t = self._paused_at.pop(notice.turn, t) if notice.flushed else t
        self.bus.publish(PlaybackEnd(t, notice.turn, played_s=notice.played_samples / self.rate))
        if turn is not None:
            reason = Reason.ANSWERED
            if notice.flushed:
                reason = Reason.STOPPED if notice.turn in self._stopped else Reason.INTERRUPTED
            self._stopped.pop(notice.turn, None)
            self._finish_turn(turn, t, reply=notice.heard, interrupted=notice.flushed, reason=reason)

    # ------------------------------------------------------------- barge-in

    def _replying(self) -> list[int]:
        """Turns whose reply is playing or about to (committed, not done)."""
        return [t.id for t in self._turns.values() if t.state is TurnState.COMMITTED]

    def _gate(self, block: np.ndarray, level_db: float, vad: bool) -> tuple[bool, float | None]:
        """Is this frame speech, and the second stage's probability (see ``bargein``).

        Outside replies it is webrtcvad's verdict alone; during one, frames that
        do not stand out of the echo are not speech.
        """
        # Gate until the reply's echo has died away too: the last word's echo
        # reaches the microphone after the turn has ended.
        echo_db = self.speaker.echo_level_db()
        if not self.cfg.barge_in.enabled or (
            self._suspicion is None and not self._replying() and echo_db is None
        ):
            self._gating = False
            return vad, None
        if not self._gating and self.second_stage is not None:
            self.second_stage.reset()  # its state is from long ago
        self._gating = True
        prob = self.second_stage.probability(block) if self.second_stage is not None else None
        return is_user_speech(vad, level_db, echo_db, self.barge_in), prob

    def _disturb(self) -> None:
        """Pause or duck the output while an interruption is being judged."""
        match self.cfg.barge_in.on_onset:
            case "pause":
                self.speaker.hold()
            case "duck":
                self.speaker.duck(self.cfg.barge_in.duck_db)

    def _undisturb(self) -> None:
        self.speaker.release()
        self.speaker.duck(0.0)

    def _suspect(self, utt: _Utterance) -> None:
        replies = self._replying()
        if not replies:
            return
        if self._suspicion is None or self._suspicion.utt is not utt:
            self._suspicion = _BargeIn(utt, replies)
        self._suspicion.state = _Suspicion.OPEN
        utt.ignored = None
        self._disturb()
        self.bus.publish(BargeInSuspected(self.clock.now(), replies[0], by_turn=utt.turn))

    def _confirm_barge_in(self, sus: _BargeIn) -> None:
        """Stop the replies for good: no more tokens, no queued audio, quiet now."""
        sus.state = _Suspicion.CONFIRMED
        now = self.clock.now()
        for turn_id in sus.replies:
            turn = self._turns.get(turn_id)
            if turn is None or turn.state is not TurnState.COMMITTED:
                continue  # it ended on its own meanwhile
            heard = self.speaker.heard_text(turn_id)
            played = self.speaker.flush(turn_id)
            turn.cancel()
            self.bus.publish(
                BargeIn(now, turn_id, by_turn=sus.utt.turn, played_s=played / self.rate, heard=heard)
            )
            if played == 0:  # nothing was audible, so no end notice will come
                self._finish_turn(turn, now, reply="", interrupted=True, reason=Reason.INTERRUPTED)
            # else: on_playback finishes it when the output has gone quiet
        self._undisturb()
        logger.info("turn %d interrupted by turn %d", sus.replies[0], sus.utt.turn)

    def _reject_barge_in(self, sus: _BargeIn, verdict: Verdict, text: str) -> None:
        """Not an interruption: the reply resumes where it paused."""
        sus.state = _Suspicion.REJECTED
        sus.utt.ignored = verdict.value
        self._undisturb()
        self.bus.publish(
            BargeInRejected(self.clock.now(), sus.replies[0], sus.utt.turn, verdict.value, text)
        )

    def _judge(self, utt: _Utterance, text: str, logprob: float | None) -> None:
        sus = self._suspicion
        if sus is None or sus.utt is not utt or sus.state is not _Suspicion.OPEN:
            return
        played = " ".join(self._turns[t].reply for t in sus.replies if t in self._turns)
        verdict = judge(text, sus.voiced_ms, played, self.barge_in, logprob)
        if verdict is Verdict.INTERRUPTION:
            self._confirm_barge_in(sus)
        elif verdict is Verdict.SHORT and not utt.ended:
            # A fast final transcript lands inside a comma pause ("Wait, | what
            # is..."): resuming the reply now would be heard for the ~100 ms
            # until the user goes on. A knock the second stage never took for a
            # voice was rejected at the pause already (is_clearly_noise).
            sus.short_text = text
        else:
            self._reject_barge_in(sus, Verdict.NOISE if verdict is Verdict.SHORT else verdict, text)

    def _forget_suspicion(self, utt: _Utterance) -> None:
        sus = self._suspicion
        if sus is not None and sus.utt is utt:
            if sus.state is _Suspicion.OPEN:
                self._undisturb()
            self._suspicion = None

    # ------------------------------------------------------------ utterances

    def _frame_time(self, index: int) -> float:
        return index * self.frame_s

    def _on_start(self) -> None:
        ep = self.endpointer
        self._turn_counter += 1
        # The endpointer fires a few frames after the onset; keep those plus pre-roll.
        back = ep.index - ep.onset_index + 1 + self._pre_roll_frames
        frames = list(self._recent)[-back:]
        self._utt = _Utterance(
            turn=self._turn_counter, frames=frames, start_t=self._frame_time(ep.onset_index)
        )
        self._utt.last_partial_at = self.clock.now()
        self.bus.publish(SpeechStart(self._frame_time(ep.onset_index), self._turn_counter))
        if self.cfg.barge_in.enabled:
            self._suspect(self._utt)

    def _audio(self, utt: _Utterance) -> np.ndarray:
        """The utterance so far, at the rate the recognizer takes."""
        audio = np.concatenate(utt.frames) if utt.frames else np.zeros(0, np.float32)
        return resample(audio, self.rate, self.transcriber.sample_rate)

    def _maybe_partial(self) -> None:
        utt = self._utt
        interval = self.cfg.asr.partial_interval_ms / 1000
        if utt is None or interval <= 0 or self.partial_worker.busy or utt.final_task:
            return
        now = self.clock.now()
        if now - utt.last_partial_at < interval:
            return
        utt.last_partial_at = now
        self._spawn(self._partial(utt, self._audio(utt), utt.version))

    async def _partial(self, utt: _Utterance, audio: np.ndarray, version: int) -> None:
        result = await self.partial_worker.call(self.transcriber.transcribe, audio)
        if utt.ended or utt.final_task or version != utt.version:
            return  # stale: the final transcript supersedes it
        if result.text and result.text != utt.last_partial_text:
            utt.last_partial_text = result.text
            self.bus.publish(AsrPartial(self.clock.now(), utt.turn, result.text))
            self._prefill_user(result.text)

    def _prefill_user(self, partial: str) -> None:
        """Evaluate the user's first words in the LLM while they are still speaking.

        The last two words of a partial are often cut off or revised; the rest is
        what the final transcript will start with, so the reply's first token
        then costs only the words after it. Skipped while the LLM is busy (a
        reply is generating): the prefill must never delay a reply.
        """
        if self.gate is not None:  # the reply's prompt will not have the wake word
            partial = self.gate.strip(partial)
        words = partial.split()
        if len(words) < 4 or self.llm_worker.busy:
            return
        prefix = self.history.prefix(self.cfg.llm.system_prompt)
        self._spawn(self._prefill(prefix, " ".join(words[:-2])))

    def _on_pause(self) -> None:
        utt = self._utt
        if utt is None:
            return
        sus = self._suspicion
        if sus is not None and sus.utt is utt and sus.state is _Suspicion.OPEN:
            if is_clearly_noise(sus.peak_probability, self.barge_in):  # a knock: resume now
                self._reject_barge_in(sus, Verdict.NOISE, "")
        utt.end_probability, utt.end_heard = None, False
        utt.final_task = self._spawn(self._final(utt, self._audio(utt), utt.version))

    async def _hear_end(self, utt: _Utterance, audio: np.ndarray, version: int) -> None:
        """Ask the end-of-turn model about this pause."""
        assert self.end_model is not None
        try:
            audio = resample(audio, self.transcriber.sample_rate, self.end_model.sample_rate)
            probability: float | None = await self.end_worker.call(self.end_model.probability, audio)
        except StageError as err:  # the words alone still decide
            logger.warning("turn %d: end-of-turn model failed: %s", utt.turn, err)
            probability = None
        if version != utt.version:
            return
        utt.end_probability, utt.end_heard = probability, True
        self._decide_end(utt)

    def _decide_end(self, utt: _Utterance) -> None:
        """Once the words and the voice of this pause are known: how long to wait."""
        if utt is not self._utt or utt.ended or utt.final_text is None or not utt.end_heard:
            return
        ms = silence_needed_ms(
            utt.final_text, utt.end_probability, self.turn_end, utt.words_probability
        )
        sus = self._suspicion
        if sus is not None and sus.utt is utt:
            # Over a reply, AEC3's double-talk suppression blurs the words (a
            # "Wait," before a comma pause came out as a confident "Wait.") and
            # the reply is held meanwhile, so a short pause must not split it.
            ms = max(ms, self.cfg.barge_in.end_silence_ms)
        self.endpointer.set_silence_needed(ms)
        self.bus.publish(
            TurnEndJudged(
                self.clock.now(), utt.turn, utt.final_text, utt.end_probability,
                utt.words_probability, ms,
            )
        )

    async def _words_end(self, text: str) -> float | None:
        """The LLM's probability that the user's message ends with ``text``.

        Skipped (None) when the LLM is busy with an earlier reply, so that it
        never delays this one, or when the text is no speech anyway.
        """
        if self.end_of_message is None or self.turn_end.words_threshold <= 0 or self.llm_worker.busy:
            return None
        if not text:
            return None
        prefix = self.history.prefix(self.cfg.llm.system_prompt)
        try:
            return await self.llm_worker.call(self.end_of_message.end_probability, prefix, text)
        except StageError as err:  # Smart Turn and the word list still decide
            logger.warning("LLM end-of-message estimate failed: %s", err)
            return None

    def _on_resume(self) -> None:
        utt = self._utt
        if utt is None:
            return
        sus = self._suspicion
        if sus is not None and sus.utt is utt:
            sus.short_text = None
            if sus.state is _Suspicion.REJECTED:
                self._suspect(utt)  # more than a backchannel after all: judge it again
        utt.version += 1
        if utt.final_task is not None:
            utt.final_task.cancel()
            utt.final_task = None
        text = utt.final_text or ""
        if utt.turn_obj is not None:
            utt.turn_obj.cancel()
            self._turns.pop(utt.turn_obj.id, None)
            utt.turn_obj = None
        utt.final_text = None
        self.bus.publish(SpeculationDiscarded(self.clock.now(), utt.turn, text))

    def _on_end(self) -> None:
        utt = self._utt
        ep = self.endpointer
        if utt is None:
            return
        utt.ended = True
        utt.end_t = self._frame_time(ep.last_voiced_index + 1)
        self._utt = None
        now = self.clock.now()
        self.bus.publish(SpeechEnd(utt.end_t, utt.turn))
        self.bus.publish(EndOfTurn(now, utt.turn))
        if utt.final_text is not None:
            self._commit(utt)
            return
        self._closing[utt.turn] = utt
        if utt.final_task is None:
            utt.final_task = self._spawn(self._final(utt, self._audio(utt), utt.version))

    async def _final(self, utt: _Utterance, audio: np.ndarray, version: int) -> None:
        try:
            result = await self.asr_worker.call(self.transcriber.transcribe, audio)
        except StageError as err:
            if version == utt.version:
                self._fail_utterance(utt, err)
            return
        if version != utt.version:
            return  # the user went on speaking; a later pause starts a new one
        text = self.gate.strip(result.text) if self.gate is not None else result.text
        words_probability = await self._words_end(text)
        if version != utt.version:
            return
        utt.words_probability = words_probability
        utt.final_text, utt.heard_text = text, result.text
        t = self.clock.now()
        # The voice is asked only when the words do not already say "wait", and
        # only now: run beside the final ASR, it slowed the ASR on 2 cores.
        if self.end_model is not None and not words_unfinished(text, words_probability, self.turn_end):
            self._spawn(self._hear_end(utt, audio, version))
        else:
            utt.end_heard = True
        self._decide_end(utt)
        self._judge(utt, result.text, result.logprob)
        turn = Turn(utt.turn, text, self.bus.publish, self._enqueue)
        turn.emit(AsrFinal(t, utt.turn, result.text))
        utt.turn_obj = turn
        self._turns[turn.id] = turn
        # Not yet addressed (the wake word detector may answer late): _commit
        # asks again and starts the reply then.
        if self._answerable(utt) and self._addressed(utt):
            turn.task = self._spawn(self._reply(turn))
        if utt.ended:
            self._commit(utt)

    def _answerable(self, utt: _Utterance) -> bool:
        text = utt.final_text or ""
        return (
            utt.ignored is None
            and not self._judging_short(utt)
            and bool(text)
        )

    def _addressed(self, utt: _Utterance) -> bool:
        """Is this utterance a request (wake word, follow-up, or talking over a reply)?"""
        if self.gate is None or utt.addressed:
            return True
        sus = self._suspicion
        if sus is not None and sus.utt is utt:
            return True  # over a reply: the barge-in rules decide
        end = utt.end_t if utt.end_t is not None else self.clock.now()
        utt.addressed = self.gate.admits(utt.start_t, end)
        return utt.addressed

    def _judging_short(self, utt: _Utterance) -> bool:
        sus = self._suspicion
        return sus is not None and sus.utt is utt and sus.short_text is not None

    def _commit(self, utt: _Utterance) -> None:
        self._closing.pop(utt.turn, None)
        sus = self._suspicion
        if self._judging_short(utt) and sus is not None and sus.state is _Suspicion.OPEN:
            self._reject_barge_in(sus, Verdict.NOISE, sus.short_text or "")  # it was all
        addressed = self._addressed(utt)
        answering = addressed and self._answerable(utt)
        self._forget_suspicion(utt)
        turn = utt.turn_obj
        if turn is None:
            return
        now = self.clock.now()
        if not answering:
            turn.drop_reply()  # whatever was prepared must not be heard
        turn.commit()
        if utt.ignored is not None:
            logger.info("turn %d: %s over a reply (%r), not answered", turn.id, utt.ignored, turn.user_text)
            self._finish_turn(turn, now, reply="", reason=Reason(utt.ignored))
        elif not addressed:
            logger.info("turn %d: no wake word (%r), not answered", turn.id, utt.heard_text)
            self._finish_turn(turn, now, reply="", reason=Reason.NOT_ADDRESSED)
        elif not turn.user_text:
            if utt.heard_text.strip() and not turn.user_text:
                logger.info("turn %d: the wake word alone (%r)", turn.id, utt.heard_text)
                reason = Reason.WAKE_WORD
            else:
                logger.info("turn %d: no speech recognized (%r)", turn.id, turn.user_text)
                reason = Reason.NO_SPEECH
            self._finish_turn(turn, now, reply="", reason=reason)
        else:
            if self.gate is not None:
                self.gate.accepted(utt.start_t)
            if turn.task is None:  # the wake word was heard only after the pause
                turn.task = self._spawn(self._reply(turn))
            elif turn.generation_done and not self.speaker.finish(turn.id):
                self._finish_turn(turn, now, reply="")
        # else: the reply task calls speaker.finish when it is done generating

    def _fail_utterance(self, utt: _Utterance, err: StageError) -> None:
        logger.error("turn %d: %s", utt.turn, err)
        self.bus.publish(ErrorEvent(self.clock.now(), utt.turn, stage=err.stage, text=str(err)))
        self._closing.pop(utt.turn, None)
        self._forget_suspicion(utt)
        if self._utt is utt:
            self._utt = None
        self.bus.publish(TurnEnd(self.clock.now(), utt.turn, "", "", reason=Reason.ERROR))

    # -------------------------------------------------------- text commands

    def say(self, text: str) -> int:
        """Speak ``text`` as it is (an announcement): a turn of its own, no LLM.

        Like a spoken request, it replaces a reply that is playing. Returns the turn.
        """
        turn = self._text_turn("say", text, user_text="")
        turn.reply = text
        turn.task = self._spawn(self._reply(turn, say=text))
        return turn.id

    def ask(self, text: str) -> int:
        """Answer ``text`` as if the user had said it; returns the turn."""
        turn = self._text_turn("ask", text, user_text=text)
        turn.task = self._spawn(self._reply(turn))
        return turn.id

    def stop(self) -> int:
        """Stop the replies that are playing or committed to play (no more
        tokens, queued audio dropped, quiet at once).

        The history keeps what was heard, as after a barge-in. What the user is
        saying meanwhile is still listened to, and may still be answered. Returns
        how many replies stopped.
        """
        now = self.clock.now()
        stopped = 0
        for turn in list(self._turns.values()):
            if turn.state is not TurnState.COMMITTED:
                continue
            heard = self.speaker.heard_text(turn.id)
            played = self.speaker.flush(turn.id)
            turn.cancel()
            stopped += 1
            if played == 0:  # nothing was audible, so no end notice will come
                self._finish_turn(turn, now, reply="", interrupted=True, reason=Reason.STOPPED)
            else:
                self._stopped[turn.id] = heard  # on_playback finishes it once quiet
        if stopped:
            # A reply held for suspected speech over it is gone: nothing is left
            # to hold, and what plays next (a say) must not wait for the verdict.
            self._undisturb()
            logger.info("stopped %d repl%s", stopped, "y" if stopped == 1 else "ies")
        return stopped

    def _text_turn(self, command: str, text: str, user_text: str) -> Turn:
        self.stop()
        self._turn_counter += 1
        turn = Turn(self._turn_counter, user_text, self.bus.publish, self._enqueue)
        turn.commit()
        self._turns[turn.id] = turn
        self.bus.publish(TextRequest(self.clock.now(), turn.id, command, text))
        return turn

    # ----------------------------------------------------------------- reply

    async def _reply(self, turn: Turn, say: str | None = None) -> None:
        """Generate the reply and speak it; with ``say``, speak that instead."""
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        # On a small CPU the first clause's synthesis is the critical path: the
        # LLM holds while it runs, then both go on side by side.
        llm_may_run = threading.Event()
        llm_may_run.set()
        speak = asyncio.ensure_future(self._speak(turn, clauses, llm_may_run))
        try:
            try:
                if say is None:
                    await self._generate(turn, clauses, llm_may_run)
                else:
                    clauses.put_nowait(say)
            finally:
                clauses.put_nowait(None)
            await speak
        except StageError as err:
            logger.error("turn %d: %s", turn.id, err)
            turn.failed = True
            turn.emit(ErrorEvent(self.clock.now(), turn.id, stage=err.stage, text=str(err)))
        finally:
            llm_may_run.set()
            if not speak.done():
                speak.cancel()
                await asyncio.gather(speak, return_exceptions=True)
        turn.generation_done = True
        if turn.state is TurnState.COMMITTED and not self.speaker.finish(turn.id):
            self._finish_turn(turn, self.clock.now(), reply="")
        # A speculative turn that is done generating is finished by _commit.

    async def _generate(
        self, turn: Turn, clauses: asyncio.Queue[str | None], llm_may_run: threading.Event
    ) -> None:
        """Stream the LLM reply into clauses, stopping after max_sentences."""
        cfg = self.cfg
        messages = self.history.messages(cfg.llm.system_prompt, turn.user_text)
        splitter = cfg.tts.splitter()
        first_clause = True

        def hand_over(clause: str) -> None:
            nonlocal first_clause
            if first_clause:
                first_clause = False
                if cfg.tts.prioritize_first_clause:
                    llm_may_run.clear()
                turn.emit(LlmFirstClause(self.clock.now(), turn.id, clause))
            clauses.put_nowait(clause)

        stream = self.llm_worker.stream(lambda: self.chat.stream_chat(messages), llm_may_run)
        try:
            async for piece in stream:
                if not turn.reply:
                    turn.emit(LlmFirstToken(self.clock.now(), turn.id, piece))
                turn.reply += piece
                for clause in splitter.push(piece):
                    hand_over(clause)
                    if splitter.sentences >= cfg.llm.max_sentences:
                        return  # the small default model rambles: cut it here
            for clause in splitter.flush(keep_unfinished=False):
                hand_over(clause)
        finally:
            await stream.aclose()

    async def _speak(
        self, turn: Turn, clauses: asyncio.Queue[str | None], llm_may_run: threading.Event
    ) -> None:
        first_audio = True
        synth = self.synthesizer
        while (clause := await clauses.get()) is not None:
            stream = self.tts_worker.stream(lambda c=clause: synth.synthesize(c))
            try:
                text = clause
                async for audio in stream:
                    if first_audio:
                        # piper starts each sentence with ~35 ms of silence: on the
                        # first one, that is latency the user hears as such
                        audio = trim_leading_silence(audio, synth.sample_rate)
                        first_audio = False
                        llm_may_run.set()
                        turn.emit(TtsFirstAudio(self.clock.now(), turn.id))
                    turn.deliver(resample(audio, synth.sample_rate, self.rate), text)
                    text = ""  # the clause's words belong to its first chunk
            finally:
                llm_may_run.set()
                await stream.aclose()

    async def _prefill(self, prefix: list[dict[str, str]], user_text: str = "") -> None:
        if self.prompt_cache is None:
            return
        try:
            await self.llm_worker.call(self.prompt_cache.prefill, prefix, user_text)
        except StageError as err:  # only an optimisation; the next turn will say more
            logger.warning("LLM prefill failed: %s", err)

    def _enqueue(self, turn: int, audio: np.ndarray, text: str) -> None:
        self.speaker.enqueue(turn, audio, text)

    def _finish_turn(
        self,
        turn: Turn,
        t: float,
        reply: str,
        interrupted: bool = False,
        reason: Reason = Reason.ANSWERED,
    ) -> None:
        if turn.state is TurnState.DONE:
            return
        if turn.state is TurnState.SPECULATIVE:
            turn.commit()
        turn.state = TurnState.DONE
        self._turns.pop(turn.id, None)
        if reason is Reason.ANSWERED and turn.failed and not reply:
            reason = Reason.ERROR
        if reason.kept_in_history and turn.user_text:
            self.history.add(Exchange(turn.id, turn.user_text, reply, interrupted))
            prefix = self.history.prefix(self.cfg.llm.system_prompt)
            self._spawn(self._prefill(prefix))
        self.bus.publish(TurnEnd(t, turn.id, turn.user_text, reply, reason=reason))

    # ------------------------------------------------------------ lifecycle

    def _spawn(self, coro) -> asyncio.Task[None]:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            logger.error("conversation task failed", exc_info=err)
            self.bus.publish(ErrorEvent(self.clock.now(), 0, stage=Stage.PIPELINE, text=repr(err)))

    async def aclose(self) -> None:
        """Cancel everything in flight and wait for it."""
        self._undisturb()
        for turn in list(self._turns.values()):
            if turn.state is TurnState.COMMITTED:
                played = self.speaker.heard_text(turn.id)
                self.speaker.flush(turn.id)
                self._finish_turn(turn, self.clock.now(), played, interrupted=True, reason=Reason.SHUTDOWN)
            elif turn.id in self._stopped:  # its end notice will not come now
                heard = self._stopped[turn.id]
                self._finish_turn(turn, self.clock.now(), heard, interrupted=True, reason=Reason.STOPPED)
            turn.cancel()
        self._stopped.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        workers = (self.asr_worker, self.partial_worker, self.llm_worker, self.tts_worker, self.end_worker)
        for worker in workers:
            worker.shutdown()
