"""``wyoming:``: Home Assistant's voice protocol, served on the shared models.

One endpoint (``wyoming.uri``) whose ``info`` lists:

- ``asr``: ``transcribe`` + ``audio-start``/``audio-chunk``/``audio-stop`` ->
  ``transcript`` (with ``transcript-start``/``-stop`` around it: transcript streaming);
- ``tts``: ``synthesize`` -> ``audio-start``, ``audio-chunk`` per sentence,
  ``audio-stop``; and synthesize streaming (``synthesize-start``/``-chunk``/``-stop``:
  each sentence spoken as soon as its text is complete);
- ``wake``: ``detect`` + an audio stream -> ``detection`` (the name, and the
  milliseconds into the stream) as each wake word is heard, ``not-detected`` at its
  ``audio-stop`` if none was; the openWakeWord models we have;
- ``handle``: a ``transcript`` -> ``handled``: local intents first, then the LLM.

Every request runs on the process's one worker per model, so Home Assistant's
pipeline and the rooms share the CPU in order of urgency. The protocol has no
token: clients other than this machine's must be in ``wyoming.allowed_clients``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel, AsrProgram, Attribution, Describe, HandleModel, HandleProgram, Info, TtsProgram, TtsVoice,
    WakeModel, WakeProgram,
)
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped
from wyoming.wake import Detect, Detection, NotDetected

from voiceagent import __version__
from voiceagent.audio.convert import float_to_int16_bytes, int16_to_mono
from voiceagent.config import Config
from voiceagent.config.house import WAKE_MODELS, WAKE_PHRASES
from voiceagent.errors import ConfigError, VoiceAgentError
from voiceagent.log_limit import LogLimiter
from voiceagent.home.protocol import Commands
from voiceagent.rules.splitter import ClauseSplitter, clean_for_speech
from voiceagent.session.build import Shared
from voiceagent.stages.lane import Priority
from voiceagent.servers.wyoming_listen import ASR_RATE, AsrStream, WakeStream, check_format
from voiceagent.stages.protocols import Transcript as ProtocolTranscript
from voiceagent.stages.vad import SileroVad
from voiceagent.stages.wake import MODEL_RATE, WakeWordDetector
from voiceagent.wyoming_bounded import BadInput, read_event

logger = logging.getLogger(__name__)

ATTRIBUTION = Attribution(name="voiceagent", url="https://github.com/voiceagent")
CHUNK_S = 0.1
"""Seconds of synthesized audio per audio-chunk."""
MAX_TEXT = 2000
MAX_CONVERSATIONS = 64
"""Conversations (by a client's ``conversation_id``) whose history is kept."""
NO_RING = "Sorry, I can't set a timer from here: I have no speaker in this house to ring it on."
STOP_S = 1.0
"""Seconds the listener has to close at the stop."""


class WyomingService:
    """The endpoint; one ``_Connection`` per client, all on ``shared``'s models."""

    def __init__(self, cfg: Config, uri: str, shared: Shared, commands: Commands | None = None,
                 can_ring: bool = False) -> None:
        """``can_ring``: a timer set through ``handle`` has a room to ring in."""
        self.cfg = cfg
        self.can_ring = can_ring
        self.uri = uri
        self.shared = shared
        self.commands = commands
        self.listening = asyncio.Event()
        self.busy = 0
        """Requests being answered (a transcription, a synthesis, an answer, a wake stream)."""
        self.refused = LogLimiter(logger)
        self._histories: dict[str, list[dict[str, str]]] = {}

    def history(self, conversation: str) -> list[dict[str, str]]:
        """The turns of ``conversation`` so far (the last ``MAX_CONVERSATIONS`` kept)."""
        key = conversation[:100]
        history = self._histories.pop(key, [])
        self._histories[key] = history
        while len(self._histories) > MAX_CONVERSATIONS:
            self._histories.pop(next(iter(self._histories)))
        return history

    @property
    def idle(self) -> bool:
        """No request is being answered (the host trims memory only then)."""
        return self.busy == 0

    def info(self) -> Info:
        cfg = self.cfg
        asr = cfg.asr.model.name
        voice = cfg.resolve_model(cfg.tts.model).stem
        return Info(
            asr=[AsrProgram(
                name="voiceagent-asr", attribution=ATTRIBUTION, installed=True, description="faster-whisper",
                version=__version__, supports_transcript_streaming=True,
                models=[AsrModel(name=asr, attribution=ATTRIBUTION, installed=True, description=asr,
                                 version=__version__, languages=["en"])],
            )],
            tts=[TtsProgram(
                name="voiceagent-tts", attribution=ATTRIBUTION, installed=True, description="piper",
                version=__version__, supports_synthesize_streaming=True,
                voices=[TtsVoice(name=voice, attribution=ATTRIBUTION, installed=True, description=voice,
                                 version=__version__, languages=["en"])],
            )],
            wake=[WakeProgram(
                name="voiceagent-wake", attribution=ATTRIBUTION, installed=True,
                description="openWakeWord", version=__version__,
                models=[WakeModel(name=m, attribution=ATTRIBUTION, installed=True, description=WAKE_PHRASES[m],
                                  version=__version__, languages=["en"], phrase=WAKE_PHRASES[m])
                        for m in WAKE_MODELS],
            )],
            handle=[HandleProgram(
                name="voiceagent", attribution=ATTRIBUTION, installed=True,
                description="local intents, then the LLM", version=__version__,
                models=[HandleModel(name="voiceagent", attribution=ATTRIBUTION, installed=True,
                                    description="voiceagent", version=__version__, languages=["en"])],
            )],
        )

    async def run(self, stop: asyncio.Event) -> None:
        server = AsyncServer.from_uri(self.uri)
        # start(), not run(): run() takes SIGTERM and SIGINT for itself, and the
        # process's stop (the host's) would never come.
        try:
            await server.start(lambda r, w: _Connection(self, r, w))
        except OSError as err:
            raise ConfigError(f"wyoming: cannot listen on {self.uri}: {err.strerror or err}") from None
        self.listening.set()
        logger.info("Wyoming services at %s", self.uri)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.stop(), STOP_S)


class _Connection(AsyncEventHandler):
    def __init__(self, service: WyomingService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.stream: AsrStream | None = None
        """The transcription being heard, from transcribe or audio-start to audio-stop."""
        self.vad: SileroVad | None = None
        """The connection's Silero for its ASR streams (made at the first)."""
        self.streaming_tts: ClauseSplitter | None = None
        """The text of a synthesize stream (synthesize-start to -stop), cut into clauses."""
        self.streamed = 0
        """Characters of it so far (at most MAX_TEXT are spoken)."""
        self.history: list[dict[str, str]] = []
        self.dropping = False
        """The audio stream was refused at its audio-start: its chunks are dropped."""
        self.wake: WakeStream | None = None
        """The wake word stream asked for by ``detect``; None: audio is for the ASR."""
        self.detectors: dict[str, WakeWordDetector] = {}
        """Made at the first ``detect`` naming them, kept for the connection's next streams."""
        peer = writer.get_extra_info("peername")
        self.address = peer[0] if isinstance(peer, tuple) else ""
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"

    async def run(self) -> None:
        """Events until the client goes; what cannot be read ends this client only,
        with one log line (the library's loop would lose the error in a task)."""
        if not self.service.cfg.wyoming.admits(self.address):
            self.service.refused.log(logging.WARNING, self.address, "wyoming: refused %s: not in wyoming.allowed_clients",
                                     self.peer)
            self.writer.close()
            return
        try:
            while True:
                event = await read_event(self.reader)
                if event is None or not await self.handle_event(event):
                    break
        except BadInput as err:
            logger.info("wyoming: %s sent %s: disconnected", self.peer, err)
        except (asyncio.IncompleteReadError, ConnectionError) as err:
            logger.info("wyoming: %s went mid-event (%s)", self.peer, type(err).__name__)
        except Exception:  # a bug: this client ends, the service and the rooms go on
            logger.exception("wyoming: the connection from %s failed", self.peer)
        finally:
            self._end_stream()  # a guess still running is of no use to anyone now
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        self.service.busy += 1
        try:
            return await self._handle(event)
        except (ValueError, TypeError, KeyError, AttributeError) as err:  # a malformed event: say so, go on
            if AudioStart.is_type(event.type):
                self._end_stream()
                self.dropping = True
            self.service.refused.log(logging.INFO, ("bad", event.type[:40]), "wyoming: bad %s event from %s: %s",
                                     event.type[:40], self.peer, str(err)[:200])
            await self.write_event(Error(text=f"bad {event.type} event: {err}"[:200], code="bad-event").event())
            return True
        except VoiceAgentError as err:  # a model failed or timed out: this request, not the client
            logger.warning("wyoming: %s", err)
            await self.write_event(Error(text=str(err)[:200], code="failed").event())
            return True
        finally:
            self.service.busy -= 1

    async def _handle(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.service.info().event())
        elif self.dropping and (AudioChunk.is_type(event.type) or AudioStop.is_type(event.type)):
            self.dropping = not AudioStop.is_type(event.type)  # the refused stream's: said once, at its start
        elif Transcribe.is_type(event.type):
            self._new_stream(ASR_RATE)
        elif Detect.is_type(event.type):
            self._end_stream()
            self.wake = await self._wake_for(Detect.from_event(event).names)
        elif self.wake is not None and (AudioStart.is_type(event.type) or AudioChunk.is_type(event.type)
                                        or AudioStop.is_type(event.type)):
            await self._listen_for_wake(self.wake, event)
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            check_format(start.rate, start.width, start.channels)
            self._new_stream(start.rate)
        elif AudioChunk.is_type(event.type):
            if self.stream is None:
                self._new_stream(ASR_RATE)
            chunk = AudioChunk.from_event(event)
            try:
                self.stream.feed(chunk.audio, chunk.rate, chunk.width, chunk.channels)
            except OverflowError as err:
                self._end_stream()
                await self.write_event(Error(text=str(err), code="too-long").event())
        elif AudioStop.is_type(event.type):
            if self.stream is not None:
                stream, self.stream = self.stream, None
                await self._transcribe(stream)
        elif Synthesize.is_type(event.type):
            if self.streaming_tts is None:  # inside a stream, synthesize repeats the whole text: ignored
                await self._synthesize(Synthesize.from_event(event).text)
        elif SynthesizeStart.is_type(event.type):
            self.streaming_tts, self.streamed = self.service.cfg.tts.splitter(), 0
        elif SynthesizeChunk.is_type(event.type):
            if self.streaming_tts is not None:  # each clause spoken as soon as its text is complete
                text = SynthesizeChunk.from_event(event).text[: max(0, MAX_TEXT - self.streamed)]
                self.streamed += len(text)
                await self._speak_streamed(self.streaming_tts.push(text))  # cleaned a clause at a time
        elif SynthesizeStop.is_type(event.type):
            if self.streaming_tts is not None:
                await self._speak_streamed(self.streaming_tts.flush())
            self.streaming_tts = None
            await self.write_event(SynthesizeStopped().event())
        elif Transcript.is_type(event.type):
            transcript = Transcript.from_event(event)
            await self._answer(transcript.text, transcript.context)
        return True

    def _new_stream(self, rate: int) -> None:
        self._end_stream()
        self.stream = AsrStream(self.service.cfg, self._whisper, self._silero, rate)

    def _silero(self) -> SileroVad:
        if self.vad is None:
            self.vad = SileroVad(ASR_RATE)
        return self.vad

    def _end_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream, self.wake = None, None

    async def _whisper(self, audio: np.ndarray) -> ProtocolTranscript:
        shared = self.service.shared
        return await shared.workers.asr.call(shared.models.transcriber.transcribe, audio, priority=Priority.REPLY)

    async def _wake_for(self, names: list[str] | None) -> WakeStream:
        """The detectors for ``names`` (None or []: the configured wake word, else every one)."""
        wanted = [n.strip().lower().replace(" ", "_") for n in names or []]
        unknown = [n for n in wanted if n not in WAKE_MODELS]
        if unknown:
            raise ValueError(f"no wake word model {unknown[0][:40]!r} (we have {', '.join(WAKE_MODELS)})")
        if not wanted:
            configured = self.service.cfg.wake.model
            wanted = [configured] if configured != "none" else list(WAKE_MODELS)
        wake_cfg, worker = self.service.cfg.wake, self.service.shared.workers.wake
        for name in wanted:
            if name not in self.detectors:
                def make(name: str = name) -> WakeWordDetector:
                    detector = WakeWordDetector(name, wake_cfg.threshold, MODEL_RATE)
                    detector.warm_up()
                    return detector
                self.detectors[name] = await worker.call(make)
        return WakeStream([self.detectors[n] for n in dict.fromkeys(wanted)])

    async def _listen_for_wake(self, wake: WakeStream, event: Event) -> None:
        worker = self.service.shared.workers.wake
        if AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            check_format(start.rate, start.width, start.channels)
            await worker.call(wake.reset, start.rate)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            check_format(chunk.rate, chunk.width, chunk.channels)
            if chunk.rate != wake.rate:  # no audio-start, or it lied
                await worker.call(wake.reset, chunk.rate)
            audio = wake.resampler(int16_to_mono(chunk.audio, chunk.width, chunk.channels))
            for name in await worker.call(wake.detect, audio):
                await self.write_event(Detection(name=name, timestamp=wake.ms).event())
        else:  # audio-stop
            if not wake.detected:
                await self.write_event(NotDetected().event())

    async def _transcribe(self, stream: AsrStream) -> None:
        result = await stream.final()
        await self.write_event(TranscriptStart(language="en").event())
        await self.write_event(Transcript(text=result.text, language="en").event())
        await self.write_event(TranscriptStop().event())

    async def _synthesize(self, text: str) -> None:
        """One ``synthesize``: one audio-start, each clause's audio as soon as it is
        synthesized, one audio-stop."""
        await self.write_event(AudioStart(rate=self.service.shared.models.synthesizer.sample_rate,
                                          width=2, channels=1).event())
        splitter = self.service.cfg.tts.splitter()  # the first clause short, as in a room: the first sound soon
        for clause in splitter.push(clean_for_speech(text[:MAX_TEXT])) + splitter.flush():
            await self._speak(clause)
        await self.write_event(AudioStop().event())

    async def _speak_streamed(self, clauses: list[str]) -> None:
        """Synthesize streaming: each clause between an audio-start and an audio-stop of
        its own, as wyoming-piper sends each sentence."""
        rate = self.service.shared.models.synthesizer.sample_rate
        for clause in filter(None, map(clean_for_speech, clauses)):
            await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            await self._speak(clause)
            await self.write_event(AudioStop().event())

    async def _speak(self, clause: str) -> None:
        shared = self.service.shared
        synth = shared.models.synthesizer
        rate = synth.sample_rate
        step = int(CHUNK_S * rate) * 2
        async for audio in shared.workers.tts.stream(lambda: synth.synthesize(clause), priority=Priority.REPLY):
            pcm = float_to_int16_bytes(audio)
            for i in range(0, len(pcm), step):
                await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i : i + step]).event())

    async def _answer(self, text: str, context: dict | None = None) -> None:
        """``context``: a newer client's (``conversation_id``): turns of one conversation
        share a history across connections (Home Assistant opens one per turn)."""
        text = text.strip()[:MAX_TEXT]
        if not text:
            await self.write_event(NotHandled(text="nothing was said").event())
            return
        commands = self.service.commands
        command = commands.match(text) if commands is not None else None
        if command is not None and commands is not None:
            if command.intent == "HassStartTimer" and not self.service.can_ring:  # never claim what cannot be
                await self.write_event(Handled(text=NO_RING).event())
                return
            outcome = await commands.execute(command)
            await self.write_event(Handled(text=outcome.speech).event())
            return
        shared, cfg = self.service.shared, self.service.cfg
        conversation = context.get("conversation_id") if isinstance(context, dict) else None
        history = self.history if not isinstance(conversation, str) else self.service.history(conversation)
        messages = [{"role": "system", "content": cfg.llm.system_prompt}, *history[-8:],
                    {"role": "user", "content": text}]
        pieces: list[str] = []
        async for piece in shared.workers.llm.stream(lambda: shared.models.chat.stream_chat(messages),
                                                      priority=Priority.REPLY):
            pieces.append(piece)
        reply = "".join(pieces).strip()
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
        del history[:-8]
        await self.write_event(Handled(text=reply).event())
