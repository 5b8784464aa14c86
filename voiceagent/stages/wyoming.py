"""ASR and TTS on another machine, over Home Assistant's voice protocol
(``asr.backend: wyoming`` with ``asr.uri``, ``tts.backend: wyoming`` with ``tts.uri``).

The servers people already run in a house (``wyoming-faster-whisper`` and
``wyoming-piper``, often on a box with a GPU, or another voiceagent's
``wyoming:`` services) become this process's ``Transcriber`` and
``Synthesizer``. The dialogue does not know: partial and final transcripts and
each clause of a reply are requests like any other, on the stage's worker
thread, so these calls block like the in-process models' do.

One connection per request: ``wyoming-faster-whisper`` closes its side after
each transcript, and a fresh connection cannot carry the end of a request cut
short before it (a clause abandoned at a barge-in). On a LAN a connect costs
well under a millisecond; ``benchmarks/wyoming_hop.py`` measures the whole hop.
Everything read from the server is bounded (``wyoming_bounded``), and a server
that is down, slow or talking nonsense is a ``StageError`` with one line saying
which, so the turn apologises and the house goes on.
"""

from __future__ import annotations

import logging
import socket
import time
from contextlib import closing
from typing import Iterator

import numpy as np
from wyoming.asr import Transcribe, Transcript as WyomingTranscript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, write_event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from voiceagent.audio.convert import float_to_int16_bytes, int16_to_mono, resample
from voiceagent.config import AsrConfig, TtsConfig
from voiceagent.config.sections import split_wyoming_uri
from voiceagent.errors import ModelLoadError, Stage, StageError
from voiceagent.stages.piper import trim_lead
from voiceagent.stages.protocols import Transcript
from voiceagent.stages.whisper import is_probably_noise
from voiceagent.wyoming_bounded import BadInput, read_event_sync

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
SEND_CHUNK_S = 1.0
"""Seconds of audio per audio-chunk sent to a remote ASR (fewer events, same bytes)."""
MAX_EVENTS = 100_000
"""Events one answer may take (a remote TTS sends ~10 a second of speech)."""


class _Remote:
    """One Wyoming server, asked one request per connection."""

    def __init__(self, stage: Stage, what: str, uri: str, timeout_s: float) -> None:
        self.stage = stage
        self.what = what
        self.uri = uri
        self.timeout_s = timeout_s

    def connect(self) -> socket.socket:
        host, port = split_wyoming_uri(self.uri)
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as err:
            raise self.error(f"cannot reach it (is it running?): {err.strerror or err}") from None
        sock.settimeout(self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def error(self, why: str) -> StageError:
        return StageError(self.stage, f"the Wyoming {self.what} at {self.uri}: {why}")

    def events(self, sock: socket.socket, requests: list[Event]) -> Iterator[Event]:
        """Send ``requests``, then yield what the server answers until it closes;
        its ``error`` event, a timeout, a reset or nonsense raise ``StageError``."""
        try:
            with sock.makefile("wb") as out:
                for event in requests:
                    write_event(event, out)
            with sock.makefile("rb") as reader:
                for _ in range(MAX_EVENTS):
                    event = read_event_sync(reader)
                    if event is None:
                        return
                    if Error.is_type(event.type):
                        raise self.error(f"answered an error: {Error.from_event(event).text[:200]}")
                    yield event
            raise self.error(f"sent over {MAX_EVENTS} events for one request")
        except TimeoutError:
            raise self.error(f"sent nothing for {self.timeout_s:g} s") from None
        except (BadInput, EOFError, ValueError, KeyError, TypeError) as err:
            raise self.error(f"sent what is not a Wyoming answer: {err}") from None
        except OSError as err:
            raise self.error(f"the connection failed: {err.strerror or err}") from None

    def describe(self) -> Info:
        with closing(self.connect()) as sock:
            for event in self.events(sock, [Describe().event()]):
                if Info.is_type(event.type):
                    return Info.from_event(event)
        raise self.error("closed the connection without its info")


class WyomingTranscriber:
    """A ``Transcriber`` on a Wyoming ASR server (``wyoming-faster-whisper``)."""

    sample_rate = 16000
    """Hertz of what is sent: what Whisper servers take."""

    def __init__(self, cfg: AsrConfig) -> None:
        assert cfg.uri is not None  # the config's validator says so
        self._cfg = cfg
        self._remote = _Remote(Stage.ASR, "ASR", cfg.uri, cfg.timeout_s)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        began = time.perf_counter()
        pcm = float_to_int16_bytes(np.asarray(audio, dtype=np.float32))
        step = int(SEND_CHUNK_S * self.sample_rate) * 2
        fmt = {"rate": self.sample_rate, "width": 2, "channels": 1}
        requests = [
            Transcribe(language=self._cfg.language).event(),
            AudioStart(**fmt).event(),
            *(AudioChunk(audio=pcm[i : i + step], **fmt).event() for i in range(0, len(pcm), step)),
            AudioStop().event(),
        ]
        with closing(self._remote.connect()) as sock:
            for event in self._remote.events(sock, requests):
                if WyomingTranscript.is_type(event.type):  # the whole text (after any -chunks)
                    text = WyomingTranscript.from_event(event).text.strip()
                    seconds = time.perf_counter() - began
                    if text and is_probably_noise(text):
                        return Transcript("", seconds)
                    return Transcript(text, seconds)
        raise self._remote.error("closed the connection without a transcript")

    def warm_up(self) -> None:
        """Check that the server is there and transcribes (a one-line error at
        start, not at the first turn), and let it load its model."""
        try:
            info = self._remote.describe()
            if not info.asr:
                raise self._remote.error("offers no speech-to-text (its info lists no asr)")
            self.transcribe(np.zeros(self.sample_rate // 2, dtype=np.float32))
        except StageError as err:
            raise ModelLoadError(str(err).removeprefix("asr: "), "check asr.uri") from None
        logger.info("ASR: %s at %s", info.asr[0].name, self._cfg.uri)


class WyomingSynthesizer:
    """A ``Synthesizer`` on a Wyoming TTS server (``wyoming-piper``): each clause is
    one ``synthesize``, its audio yielded chunk by chunk as it arrives."""

    def __init__(self, cfg: TtsConfig) -> None:
        assert cfg.uri is not None
        self._cfg = cfg
        self._remote = _Remote(Stage.TTS, "TTS", cfg.uri, cfg.timeout_s)
        self.sample_rate = 22050
        """Hertz of the audio yielded: the server's, learnt by ``warm_up``."""

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        voice = SynthesizeVoice(name=self._cfg.voice) if self._cfg.voice else None
        with closing(self._remote.connect()) as sock:
            first = True
            for event in self._remote.events(sock, [Synthesize(text=text, voice=voice).event()]):
                if AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    audio = int16_to_mono(chunk.audio, chunk.width, chunk.channels)
                    if chunk.rate != self.sample_rate:
                        audio = resample(audio, chunk.rate, self.sample_rate)
                    if first:  # a remote piper leads with its near-silence too
                        audio, first = trim_lead(audio, self.sample_rate), False
                    if audio.size:
                        yield audio
                elif AudioStop.is_type(event.type):
                    return
        raise self._remote.error("closed the connection before the end of the audio")

    def warm_up(self) -> None:
        """Check the server, learn its voice's rate and let it load the voice."""
        try:
            info = self._remote.describe()
            if not info.tts:
                raise self._remote.error("offers no text-to-speech (its info lists no tts)")
            with closing(self._remote.connect()) as sock:
                for event in self._remote.events(sock, [Synthesize(text="Hello.").event()]):
                    if AudioStart.is_type(event.type):
                        self.sample_rate = AudioStart.from_event(event).rate
                    elif AudioStop.is_type(event.type):
                        break
        except StageError as err:
            raise ModelLoadError(str(err).removeprefix("tts: "), "check tts.uri") from None
        logger.info("TTS: %s at %s, %d Hz", info.tts[0].name, self._cfg.uri, self.sample_rate)
