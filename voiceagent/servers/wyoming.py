"""``wyoming:``: Home Assistant's voice protocol, served on the shared models.

One endpoint (``wyoming.uri``) whose ``info`` lists:

- ``asr``: ``transcribe`` + ``audio-start``/``audio-chunk``/``audio-stop`` ->
  ``transcript`` (with ``transcript-start``/``-stop`` around it: transcript streaming);
- ``tts``: ``synthesize`` -> ``audio-start``, ``audio-chunk`` per sentence,
  ``audio-stop``; and synthesize streaming (``synthesize-start``/``-chunk``/``-stop``:
  each sentence spoken as soon as its text is complete);
- ``handle``: a ``transcript`` -> ``handled``: local intents first, then the LLM.

WORK IN PROGRESS (issue 23): wake, satellites, remote stages, the HA tests.
Every request runs on the process's one worker per model, so Home Assistant's
pipeline and the rooms share the CPU in order of urgency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

from wyoming.asr import Transcribe, Transcript, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel, AsrProgram, Attribution, Describe, HandleModel, HandleProgram, Info, TtsProgram, TtsVoice,
)
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from voiceagent import __version__
from voiceagent.audio.convert import float_to_int16_bytes, int16_to_mono, resample
from voiceagent.config import Config
from voiceagent.errors import ConfigError, VoiceAgentError
from voiceagent.home.protocol import Commands
from voiceagent.rules.splitter import ClauseSplitter, clean_for_speech
from voiceagent.session.build import Shared
from voiceagent.stages.lane import Priority

logger = logging.getLogger(__name__)

ATTRIBUTION = Attribution(name="voiceagent", url="https://github.com/voiceagent")
MAX_AUDIO_S = 60.0
"""Seconds of audio one transcription takes at most (more is refused)."""
CHUNK_S = 0.1
"""Seconds of synthesized audio per audio-chunk."""
MAX_TEXT = 2000
HEADER_LIMIT = 64 * 1024
"""asyncio's line limit: a longer header line is refused."""
MAX_DATA = 64 * 1024
MAX_PAYLOAD = 1 << 20
"""Bytes of one event's payload at most (an audio chunk is a few kB)."""
STOP_S = 1.0
"""Seconds the listener has to close at the stop."""


@dataclass
class _Stream:
    rate: int = 16000
    width: int = 2
    channels: int = 1
    pcm: list[bytes] = field(default_factory=list)
    size: int = 0


class WyomingService:
    """The endpoint; one ``_Connection`` per client, all on ``shared``'s models."""

    def __init__(self, cfg: Config, uri: str, shared: Shared, commands: Commands | None = None) -> None:
        self.cfg = cfg
        self.uri = uri
        self.shared = shared
        self.commands = commands
        self.listening = asyncio.Event()
        self.idle = True

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


class BadInput(ValueError):
    """What a client sent is no Wyoming event we can read: it is disconnected."""


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, read within bounds (the library's reader takes any
    ``payload_length`` a client names, and memory with it). None at the end."""
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError):
        raise BadInput(f"a header line over {HEADER_LIMIT} bytes") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError:
        raise BadInput("a header that is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise BadInput("a header with no type")
    data = header.get("data") or {}
    sizes = {}
    for key, limit in (("data_length", MAX_DATA), ("payload_length", MAX_PAYLOAD)):
        size = header.get(key) or 0
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= limit:
            raise BadInput(f"{key} {str(size)[:20]} (at most {limit})")
        sizes[key] = size
    if not isinstance(data, dict):
        raise BadInput("data that is not an object")
    if sizes["data_length"]:
        try:
            extra = json.loads(await reader.readexactly(sizes["data_length"]))
        except ValueError:
            raise BadInput("additional data that is not JSON") from None
        if not isinstance(extra, dict):
            raise BadInput("additional data that is not an object")
        data.update(extra)
    payload = await reader.readexactly(sizes["payload_length"]) if sizes["payload_length"] else None
    return Event(type=header["type"][:100], data=data, payload=payload)


class _Connection(AsyncEventHandler):
    def __init__(self, service: WyomingService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.stream: _Stream | None = None
        self.streaming_tts: list[str] | None = None
        self.history: list[dict[str, str]] = []
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"

    async def run(self) -> None:
        """Events until the client goes; what cannot be read ends this client only,
        with one log line (the library's loop would lose the error in a task)."""
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
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        try:
            return await self._handle(event)
        except (ValueError, TypeError, KeyError, AttributeError) as err:  # a malformed event: say so, go on
            logger.info("wyoming: bad %s event from %s: %s", event.type, self.peer, str(err)[:200])
            await self.write_event(Error(text=f"bad {event.type} event: {err}"[:200], code="bad-event").event())
            return True
        except VoiceAgentError as err:  # a model failed or timed out: this request, not the client
            logger.warning("wyoming: %s", err)
            await self.write_event(Error(text=str(err)[:200], code="failed").event())
            return True

    async def _handle(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.service.info().event())
        elif Transcribe.is_type(event.type):
            self.stream = _Stream()
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self.stream = _Stream(start.rate, start.width, start.channels)
        elif AudioChunk.is_type(event.type):
            if self.stream is None:
                self.stream = _Stream()
            chunk = AudioChunk.from_event(event)
            self.stream.pcm.append(chunk.audio)
            self.stream.size += len(chunk.audio)
            if self.stream.size > MAX_AUDIO_S * chunk.rate * chunk.width * chunk.channels:
                self.stream = None
                await self.write_event(Error(text=f"over {MAX_AUDIO_S:g} s of audio", code="too-long").event())
        elif AudioStop.is_type(event.type):
            if self.stream is not None:
                stream, self.stream = self.stream, None
                await self._transcribe(stream)
        elif Synthesize.is_type(event.type):
            if self.streaming_tts is None:  # inside a stream, synthesize repeats the whole text: ignored
                await self._synthesize(Synthesize.from_event(event).text)
        elif SynthesizeStart.is_type(event.type):
            self.streaming_tts = []
        elif SynthesizeChunk.is_type(event.type):
            if self.streaming_tts is not None:
                self.streaming_tts.append(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            text = " ".join(self.streaming_tts or [])
            self.streaming_tts = None
            await self._synthesize(text)
            await self.write_event(SynthesizeStopped().event())
        elif Transcript.is_type(event.type):
            await self._answer(Transcript.from_event(event).text)
        return True

    async def _transcribe(self, stream: _Stream) -> None:
        audio = int16_to_mono(b"".join(stream.pcm), stream.width, stream.channels)
        if stream.rate != 16000:
            audio = resample(audio, stream.rate, 16000)
        shared = self.service.shared
        result = await shared.workers.asr.call(shared.models.transcriber.transcribe, audio, priority=Priority.REPLY)
        await self.write_event(TranscriptStart(language="en").event())
        await self.write_event(Transcript(text=result.text, language="en").event())
        await self.write_event(TranscriptStop().event())

    async def _synthesize(self, text: str) -> None:
        shared = self.service.shared
        synth = shared.models.synthesizer
        rate = synth.sample_rate
        await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        splitter = ClauseSplitter(first_min_words=1, min_words=1, first_max_words=40)
        for clause in splitter.push(clean_for_speech(text[:MAX_TEXT])) + splitter.flush():
            async for audio in shared.workers.tts.stream(lambda c=clause: synth.synthesize(c), priority=Priority.REPLY):
                pcm = float_to_int16_bytes(audio)
                step = int(CHUNK_S * rate) * 2
                for i in range(0, len(pcm), step):
                    await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i : i + step]).event())
        await self.write_event(AudioStop().event())

    async def _answer(self, text: str) -> None:
        text = text.strip()[:MAX_TEXT]
        if not text:
            await self.write_event(NotHandled(text="nothing was said").event())
            return
        commands = self.service.commands
        command = commands.match(text) if commands is not None else None
        if command is not None and commands is not None:
            outcome = await commands.execute(command)
            await self.write_event(Handled(text=outcome.speech).event())
            return
        shared, cfg = self.service.shared, self.service.cfg
        messages = [{"role": "system", "content": cfg.llm.system_prompt}, *self.history[-8:],
                    {"role": "user", "content": text}]
        pieces: list[str] = []
        async for piece in shared.workers.llm.stream(lambda: shared.models.chat.stream_chat(messages),
                                                      priority=Priority.REPLY):
            pieces.append(piece)
        reply = "".join(pieces).strip()
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
        await self.write_event(Handled(text=reply).event())
