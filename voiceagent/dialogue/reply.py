"""Making one turn's reply: the LLM's stream cut into clauses, each clause
synthesized as soon as it is complete, the audio handed to the turn. Or, for a
command of the house, the action and what came of it.

The two halves run side by side in one ``TaskGroup``: a failure or a cancellation
of either stops both. On a small CPU the first clause's synthesis is the
critical path, so the LLM holds while it runs (``tts.prioritize_first_clause``),
then both go on together.

A command ("turn on the office lights") runs only once its turn has committed,
and once: speculation may only prepare it. What it will most likely say is
synthesized meanwhile, so when Home Assistant has accepted the call the answer
plays at once; if something else came of it (HA down, a refusal), that is
said instead. Every clause the LLM writes is checked for a claimed action
(``rules.claims``): the LLM never acts, so such a claim is replaced by the
truth before it is spoken.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np

from voiceagent.audio.convert import resample
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.dialogue.history import History
from voiceagent.dialogue.turn import Turn
from voiceagent.errors import Stage, StageError
from voiceagent.events import ErrorEvent, IntentHandled, LlmFirstClause, LlmFirstToken, TtsFirstAudio
from voiceagent.home.protocol import Command, Commands
from voiceagent.rules.claims import claims_action, might_claim
from voiceagent.stages.protocols import ChatModel, Synthesizer
from voiceagent.stages.lane import Priority
from voiceagent.stages.workers import Worker

logger = logging.getLogger(__name__)

CANNOT_ACT = "Sorry, I can't do that: I'm not connected to any devices."
"""Said instead of a clause that claims an action, with no house to ask."""

APOLOGY = "Sorry, something went wrong there. Please try again."
"""Said when a model fails (or hangs past its ``timeout_s``) before a word of the
reply: silence would leave the user wondering whether they were heard."""


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
        commands: Commands | None = None,
    ) -> None:
        self.cfg = cfg
        self.chat = chat
        self.synthesizer = synthesizer
        self.llm_worker = llm_worker
        self.tts_worker = tts_worker
        self.history = history
        self.clock = clock
        self.commands = commands
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
                if say is None and turn.command is not None and self.commands is not None:
                    group.create_task(self._act(turn, self.commands, turn.command, clauses))
                elif say is None and self.commands is not None and self.commands.converses:
                    group.create_task(self._converse(turn, self.commands, clauses))
                elif say is None:
                    group.create_task(self._generate(turn, clauses, llm_may_run))
                else:
                    clauses.put_nowait(say)
                    clauses.put_nowait(None)
        except* StageError as failures:
            err = failures.exceptions[0]
            logger.error("turn %d: %s", turn.id, err)
            turn.failed = True
            turn.emit(ErrorEvent(self.clock.now(), turn.id, stage=err.stage, text=str(err)))  # type: ignore[attr-defined]
            if not turn.delivered and err.stage is not Stage.TTS:  # type: ignore[attr-defined]
                await self._apologize(turn)
        finally:
            llm_may_run.set()  # a worker thread holding for it must not wait forever

    async def _apologize(self, turn: Turn) -> None:
        turn.apologized = True
        turn.reply = APOLOGY
        try:
            chunks = await self._synthesize(APOLOGY)
        except StageError as err:
            logger.error("turn %d: could not say sorry either: %s", turn.id, err)
            return
        self._deliver_all(turn, chunks, APOLOGY)

    async def _generate(
        self, turn: Turn, clauses: asyncio.Queue[str | None], llm_may_run: threading.Event
    ) -> None:
        """Stream the LLM reply into clauses, stopping after ``llm.max_sentences``."""
        cfg = self.cfg
        messages = self.history.messages(cfg.llm.system_prompt, turn.user_text)
        splitter = cfg.tts.splitter()
        first_clause = True

        def hand_over(clause: str) -> bool:
            """Give ``clause`` to the TTS; False if the reply must end here."""
            nonlocal first_clause
            honest = not claims_action(clause)
            if not honest:
                logger.warning("turn %d: the LLM claimed an action (%r); saying so instead", turn.id, clause)
                clause = self.commands.cannot_act() if self.commands is not None else CANNOT_ACT
                turn.reply = clause
            if first_clause:
                first_clause = False
                if cfg.tts.prioritize_first_clause:
                    llm_may_run.clear()
                turn.emit(LlmFirstClause(self.clock.now(), turn.id, clause))
            clauses.put_nowait(clause)
            return honest

        held = ""
        """The start of a sentence a few more words could turn into a claim
        (``might_claim``), kept back until it is whole and can be checked as one."""

        def take(clause: str) -> bool:
            nonlocal held
            text = f"{held} {clause}" if held else clause
            if clause.rstrip()[-1:] not in ".!?\u2026" and might_claim(text):
                held = text
                return True
            held = ""
            return hand_over(text)

        stream = self.llm_worker.stream(
            lambda: self.chat.stream_chat(messages), llm_may_run, priority=Priority.REPLY
        )
        try:
            async for piece in stream:
                if not turn.reply:
                    turn.emit(LlmFirstToken(self.clock.now(), turn.id, piece))
                turn.reply += piece
                for clause in splitter.push(piece):
                    if not take(clause):
                        return
                    if splitter.sentences >= cfg.llm.max_sentences:
                        if held:
                            hand_over(held)
                        return  # the small default model rambles: cut it here
            for clause in splitter.flush(keep_unfinished=False):
                if not take(clause):
                    return
            if held:
                hand_over(held)
        finally:
            clauses.put_nowait(None)
            await stream.aclose()  # type: ignore[attr-defined]

    async def _act(
        self, turn: Turn, commands: Commands, command: Command, clauses: asyncio.Queue[str | None]
    ) -> None:
        """Carry the command out once the turn commits, and say what came of it."""
        expected = commands.expected(command)
        early: asyncio.Task[list[np.ndarray]] | None = None
        if expected:
            early = asyncio.ensure_future(self._synthesize(expected))
        try:
            await turn.committed.wait()  # a cancelled turn never gets past here
            outcome = await commands.execute(command)
            turn.emit(IntentHandled(
                self.clock.now(), turn.id, command.intent, dict(command.slots), outcome.targets,
                outcome.result, outcome.speech,
            ))
            logger.info("turn %d: %s %s -> %s (%r)", turn.id, command.intent, outcome.targets, outcome.result, outcome.speech)
            turn.reply = outcome.speech
            if early is not None and outcome.speech == expected:
                self._deliver_all(turn, await early, expected)
            else:
                if early is not None:  # the TTS worker is needed for the words to say
                    early.cancel()
                    await asyncio.gather(early, return_exceptions=True)
                if outcome.speech:
                    clauses.put_nowait(outcome.speech)
        finally:
            clauses.put_nowait(None)
            if early is not None and not early.done():
                early.cancel()
                await asyncio.gather(early, return_exceptions=True)

    async def _converse(self, turn: Turn, commands: Commands, clauses: asyncio.Queue[str | None]) -> None:
        """Home Assistant's conversation agent answers (it may act, so only once the
        turn has committed)."""
        try:
            await turn.committed.wait()
            outcome = await commands.converse(turn.user_text)
            turn.emit(IntentHandled(
                self.clock.now(), turn.id, "conversation", {}, outcome.targets, outcome.result, outcome.speech,
                outcome.follow_up,
            ))
            turn.reply = outcome.speech
            if outcome.speech:
                clauses.put_nowait(outcome.speech)
        finally:
            clauses.put_nowait(None)

    async def _synthesize(self, text: str) -> list[np.ndarray]:
        """All of ``text``'s audio, before anyone may hear it."""
        synth = self.synthesizer
        stream = self.tts_worker.stream(lambda: synth.synthesize(text), priority=Priority.REPLY)
        try:
            return [audio async for audio in stream]
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def _deliver_all(self, turn: Turn, chunks: list[np.ndarray], text: str) -> None:
        """A whole text's audio, synthesized beforehand (its words go with the first chunk)."""
        for i, audio in enumerate(chunks):
            self._deliver(turn, audio, text if i == 0 else "", first=i == 0)

    def _deliver(self, turn: Turn, audio: np.ndarray, text: str, first: bool) -> None:
        synth = self.synthesizer
        if first:
            # Not trimmed here: a synthesizer's clauses start at their first
            # sound (piper's inaudible lead is dropped by ``stages.piper``, at
            # its own noise floor), so this is when the reply is heard.
            turn.emit(TtsFirstAudio(self.clock.now(), turn.id))
        turn.deliver(resample(audio, synth.sample_rate, self.rate), text)

    async def _speak(
        self, turn: Turn, clauses: asyncio.Queue[str | None], llm_may_run: threading.Event
    ) -> None:
        first_audio = True
        synth = self.synthesizer
        while (clause := await clauses.get()) is not None:
            stream = self.tts_worker.stream(lambda c=clause: synth.synthesize(c), priority=Priority.REPLY)
            try:
                text = clause
                async for audio in stream:
                    self._deliver(turn, audio, text, first_audio)
                    if first_audio:
                        first_audio = False
                        llm_may_run.set()
                    text = ""  # the clause's words belong to its first chunk
            finally:
                llm_may_run.set()
                await stream.aclose()  # type: ignore[attr-defined]
