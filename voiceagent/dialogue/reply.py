"""Making one turn's reply: the LLM's stream cut into clauses, each clause
synthesized as soon as it is complete, the audio handed to the turn.

The two halves run side by side in one ``TaskGroup``: a failure or a cancellation
of either stops both. On a small CPU the first clause's synthesis is the
critical path, so the LLM holds while it runs (``tts.prioritize_first_clause``),
then both go on together.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from voiceagent.audio.convert import resample, trim_leading_silence
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.dialogue.history import History
from voiceagent.dialogue.turn import Turn
from voiceagent.errors import StageError
from voiceagent.events import ErrorEvent, LlmFirstClause, LlmFirstToken, TtsFirstAudio
from voiceagent.stages.protocols import ChatModel, Synthesizer
from voiceagent.stages.workers import Worker

logger = logging.getLogger(__name__)


class ReplyMaker:
    def __init__(
        self,
        cfg: Config,
        chat: ChatModel,
        synthesizer: Synthesizer,
        llm_worker: Worker,
        tts_worker: Worker,
        history: History,
        clock: Clock,
    ) -> None:
        self.cfg = cfg
        self.chat = chat
        self.synthesizer = synthesizer
        self.llm_worker = llm_worker
        self.tts_worker = tts_worker
        self.history = history
        self.clock = clock
        self.rate = cfg.audio.sample_rate

    async def make(self, turn: Turn, say: str | None = None) -> None:
        """Generate the reply to ``turn.user_text`` and speak it; with ``say``, speak that.

        A model that fails is reported as the turn's error event and marks the
        turn failed; cancelling this (the turn was cut) stops both halves.
        """
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        llm_may_run = threading.Event()
        llm_may_run.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._speak(turn, clauses, llm_may_run))
                if say is None:
                    group.create_task(self._generate(turn, clauses, llm_may_run))
                else:
                    clauses.put_nowait(say)
                    clauses.put_nowait(None)
        except* StageError as failures:
            err = failures.exceptions[0]
            logger.error("turn %d: %s", turn.id, err)
            turn.failed = True
            turn.emit(ErrorEvent(self.clock.now(), turn.id, stage=err.stage, text=str(err)))  # type: ignore[attr-defined]
        finally:
            llm_may_run.set()  # a worker thread holding for it must not wait forever

    async def _generate(
        self, turn: Turn, clauses: asyncio.Queue[str | None], llm_may_run: threading.Event
    ) -> None:
        """Stream the LLM reply into clauses, stopping after ``llm.max_sentences``."""
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
            clauses.put_nowait(None)
            await stream.aclose()  # type: ignore[attr-defined]

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
                        # Any leading silence of the first sound is latency the user
                        # hears as such (piper starts each sentence with ~35 ms).
                        audio = trim_leading_silence(audio, synth.sample_rate)
                        first_audio = False
                        llm_may_run.set()
                        turn.emit(TtsFirstAudio(self.clock.now(), turn.id))
                    turn.deliver(resample(audio, synth.sample_rate, self.rate), text)
                    text = ""  # the clause's words belong to its first chunk
            finally:
                llm_may_run.set()
                await stream.aclose()  # type: ignore[attr-defined]
