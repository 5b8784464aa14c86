"""Listening to the user: one utterance at a time, from its onset to the end of the turn.

Per frame it does only cheap work (the noise floor, the endpointer, buffering the
audio with a pre-roll); the recognizer and the end-of-turn model run on their
own workers.

The latency trick is to overlap: when the user has been silent for
``vad.speculate_ms``, the final transcript is started on what was said so far,
and the coordinator starts the reply on it as a speculative turn (``Host.on_final``).
How long a pause must last to end the turn is judged per pause
(``rules.turn_end``): once the transcript exists and the end-of-turn model has
heard the pause, the endpointer is told to end after ``complete``, ``unsure``
or ``unfinished`` silence, so a finished question is answered after a short
silence and a hesitation after "the" is waited out. If the user goes on
speaking, the work on the pause is thrown away (``Host.on_resumed``).

Partial transcripts while the user speaks prefill the LLM with the first words,
so the reply's first token costs only the rest.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable, Protocol

import numpy as np

from voiceagent.aio import TaskSet
from voiceagent.audio.convert import resample
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.dialogue.history import History
from voiceagent.dialogue.utterance import Utterance
from voiceagent.errors import StageError
from voiceagent.events import AsrPartial, EventBus, SpeechStart, TurnEndJudged
from voiceagent.home.protocol import Commands
from voiceagent.rules.endpointer import Decision, Endpointer
from voiceagent.rules.noise_floor import NoiseFloor
from voiceagent.rules.turn_end import looks_unfinished, silence_needed_ms
from voiceagent.rules.wake_gate import WakeGate
from voiceagent.stages.protocols import EndOfMessage, EndOfTurnModel, Transcriber, Transcript
from voiceagent.stages.lane import Priority
from voiceagent.stages.workers import Workers

logger = logging.getLogger(__name__)


class Host(Protocol):
    """What the coordinator does with what is heard."""

    def on_final(self, utt: Utterance, result: Transcript) -> None:
        """The final transcript of ``utt``'s current pause is in ``utt.final_text``
        (``result`` is the recognizer's own)."""
        ...

    def on_failed(self, utt: Utterance, err: StageError) -> None:
        """The recognizer failed on ``utt``: it ends without an answer."""
        ...

    def min_silence_ms(self, utt: Utterance, ms: int) -> int:
        """The silence that ends ``utt``'s pause, given that ``ms`` would do on its own."""
        ...


class Listening:
    def __init__(
        self,
        cfg: Config,
        transcriber: Transcriber,
        bus: EventBus,
        clock: Clock,
        history: History,
        tasks: TaskSet,
        host: Host,
        workers: Workers,
        end_model: EndOfTurnModel | None = None,
        end_of_message: EndOfMessage | None = None,
        gate: WakeGate | None = None,
        prefill: Callable[[list[dict[str, str]], str], None] | None = None,
        commands: Commands | None = None,
    ) -> None:
        self.cfg = cfg
        self.transcriber = transcriber
        self.bus = bus
        self.clock = clock
        self.history = history
        self.tasks = tasks
        self.host = host
        self.end_model = end_model
        self.end_of_message = end_of_message
        self.gate = gate
        self.commands = commands
        self.prefill = prefill
        """Evaluates a prompt prefix in the LLM (the coordinator's, on the LLM's worker)."""
        self.rate = cfg.audio.sample_rate
        self.frame_s = cfg.vad.frame_ms / 1000
        self.endpointer = Endpointer(cfg.endpointer_settings())
        # Silero ends speech at the words on its own; the floor's cut is for
        # webrtcvad's hangover (and ate the end of quiet speech, measured).
        self.noise_floor = NoiseFloor(cfg.vad.end_margin_db if cfg.vad.detector == "webrtc" else 0.0)
        self.turn_end = cfg.turn.end_settings()
        # Partials have their own worker so a partial that is still running when
        # the user stops never delays the final transcript behind it.
        self.asr_worker = workers.asr
        self.partial_worker = workers.asr_partial
        self.end_worker = workers.turn_end
        self.llm_worker = workers.llm
        """Shared with the replies: the LLM also judges the words (``end_of_message``)."""
        self._pre_roll_frames = -(-cfg.vad.pre_roll_ms // cfg.vad.frame_ms)
        self._recent: deque[np.ndarray] = deque(maxlen=self._pre_roll_frames + 64)
        self.current: Utterance | None = None
        """The utterance being listened to."""
        self.closing: dict[int, Utterance] = {}
        """Ended utterances whose final transcript is still being made."""
        self.continuation = cfg.turn.continuation_settings(cfg.barge_in)
        self.last_ended: Utterance | None = None
        """The utterance that ended last, while the user may still go on with it."""
        self._after_frames = -(-self.continuation.window_ms // cfg.vad.frame_ms) + self._pre_roll_frames

    @property
    def idle(self) -> bool:
        return self.current is None and not self.closing and not self.endpointer.in_utterance

    # ------------------------------------------------------------------ frames

    def push(self, block: np.ndarray, is_speech: bool, level_db: float) -> tuple[Decision, bool]:
        """One frame (``is_speech``: the VAD's verdict, gated over a reply). Returns
        the endpointer's decision and whether the frame counted as speech: inside
        an utterance, voiced frames close to the noise floor are silence."""
        voiced = self.noise_floor.is_voiced(is_speech, level_db)  # also tracks the floor
        if self.endpointer.in_utterance:  # onsets stay the detector's alone
            is_speech = voiced
        self._recent.append(block)
        if self.current is not None and not self.current.ended:
            self.current.frames.append(block)
        if (last := self.last_ended) is not None:
            last.after.append(block)
            if len(last.after) > self._after_frames:  # too late to go on with it
                self.last_ended = None
        return self.endpointer.push(is_speech), is_speech

    def onset_t(self) -> float:
        """When the speech the endpointer just opened began."""
        return self.endpointer.onset_index * self.frame_s

    def voiced_until(self) -> float:
        """When the last frame counted as speech ended."""
        return (self.endpointer.last_voiced_index + 1) * self.frame_s

    def start(self, turn_id: int, continues: Utterance | None = None) -> Utterance:
        """The endpointer heard an onset: a new utterance, with its pre-roll, or
        with all of ``continues`` and what followed it (the user may be going on)."""
        ep = self.endpointer
        onset = self.onset_t()
        # The endpointer fires a few frames after the onset; keep those plus pre-roll.
        back = ep.index - ep.onset_index + 1 + self._pre_roll_frames
        if continues is not None:
            frames = continues.frames + continues.after
            utt = Utterance(turn=turn_id, frames=frames, start_t=continues.start_t, continues=continues)
            utt.addressed = continues.addressed
            utt.own_from = max(len(continues.frames), len(frames) - back)
        else:
            utt = Utterance(turn=turn_id, frames=list(self._recent)[-back:], start_t=onset)
        utt.onset_t = onset
        self.last_ended = None
        utt.last_partial_at = self.clock.now()
        self.current = utt
        self.bus.publish(SpeechStart(onset, turn_id))
        return utt

    def pause(self, utt: Utterance) -> None:
        """A pause of ``vad.speculate_ms``: its final transcript, speculatively."""
        utt.end_probability, utt.end_heard = None, False
        utt.final_task = self.tasks.spawn(self._final(utt, self._audio(utt), utt.version), utt.turn)

    def resume(self, utt: Utterance) -> str:
        """The user went on after a pause: the work on it is stale. Returns its transcript."""
        utt.version += 1
        if utt.final_task is not None:
            utt.final_task.cancel()
            utt.final_task = None
        text = utt.final_text or ""
        utt.final_text = None
        return text

    def end(self, utt: Utterance) -> bool:
        """The endpointer ended the turn. True if its final transcript is ready;
        otherwise ``Host.on_final`` comes when it is."""
        utt.ended = True
        utt.end_t = self.voiced_until()
        self.current = None
        self.last_ended = utt
        if utt.final_text is not None:
            return True
        self.closing[utt.turn] = utt
        if utt.final_task is None:
            utt.final_task = self.tasks.spawn(self._final(utt, self._audio(utt), utt.version), utt.turn)
        return False

    def drop(self, utt: Utterance) -> None:
        """``utt`` is withdrawn (it goes on in a later utterance): no more work on it."""
        self.resume(utt)  # what is being done on it is stale
        if self.last_ended is utt:
            self.last_ended = None
        self.done(utt)

    def done(self, utt: Utterance) -> None:
        """The coordinator has committed or dropped ``utt``."""
        self.closing.pop(utt.turn, None)
        if self.current is utt:
            self.current = None

    def keep_listening(self) -> None:
        """Between frames while in an utterance: a partial transcript, if it is time."""
        utt, interval, now = self.current, self.cfg.asr.partial_interval_ms / 1000, self.clock.now()
        if utt is None or not self.endpointer.in_utterance or interval <= 0 or self.partial_worker.busy:
            return
        if utt.final_task or now - utt.last_partial_at < interval:
            return
        utt.last_partial_at = now
        self.tasks.spawn(self._partial(utt, self._audio(utt), utt.version), utt.turn)

    # ------------------------------------------------------------------- work

    def _audio(self, utt: Utterance) -> np.ndarray:
        """The utterance so far, at the rate the recognizer takes."""
        return resample(utt.audio(), self.rate, self.transcriber.sample_rate)

    async def _partial(self, utt: Utterance, audio: np.ndarray, version: int) -> None:
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
        if self.prefill is None:
            return
        if self.gate is not None:  # the reply's prompt will not have the wake word
            partial = self.gate.strip(partial)
        words = partial.split()
        if len(words) < 4 or self.llm_worker.busy:
            return
        self.prefill(self.history.prefix(self.cfg.llm.system_prompt), " ".join(words[:-2]))

    async def _final(self, utt: Utterance, audio: np.ndarray, version: int) -> None:
        try:
            result = await self.asr_worker.call(self.transcriber.transcribe, audio, priority=Priority.REPLY)
        except StageError as err:
            if version == utt.version:
                self.host.on_failed(utt, err)
            return
        if version != utt.version:
            return  # the user went on speaking; a later pause starts a new one
        text = result.text
        if self.gate is not None:
            text = self.gate.strip(text, heard=self.gate.heard_in(utt.start_t, self.clock.now()))
        # A command of the house is a finished request: the LLM need not judge it.
        command = self.commands.match(text) if self.commands is not None else None
        words_probability = None if command is not None else await self._words_end(text)
        if version != utt.version:
            return
        utt.command = command
        utt.words_probability = words_probability
        utt.final_text, utt.heard_text = text, result.text
        # The voice is asked unless the words are a command or end on one a sentence cannot end on,
        # beside the reply (llm.threads: 1 leaves it the other core of two).
        if self.end_model is not None and command is None and not looks_unfinished(text):
            self.tasks.spawn(self._hear_end(utt, audio, version), utt.turn)
        else:
            utt.end_heard = True
        self._decide_end(utt)
        self.host.on_final(utt, result)

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
            return await self.llm_worker.call(
                self.end_of_message.end_probability, prefix, text, priority=Priority.OPTIONAL
            )
        except StageError as err:  # Smart Turn and the word list still decide
            logger.warning("LLM end-of-message estimate failed: %s", err)
            return None

    async def _hear_end(self, utt: Utterance, audio: np.ndarray, version: int) -> None:
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

    def _decide_end(self, utt: Utterance) -> None:
        """Once the words and the voice of this pause are known: how long to wait."""
        if utt is not self.current or utt.ended or utt.final_text is None or not utt.end_heard:
            return
        command = utt.command is not None
        ms = silence_needed_ms(utt.final_text, utt.end_probability, self.turn_end, utt.words_probability, command)
        ms = self.host.min_silence_ms(utt, ms)
        self.endpointer.set_silence_needed(ms)
        self.bus.publish(
            TurnEndJudged(
                self.clock.now(), utt.turn, utt.final_text, utt.end_probability, utt.words_probability, ms
            )
        )
