"""The Wyoming services' audio streams: what a client's ``audio-chunk``s are heard by.

- ``AsrStream``: a ``transcribe`` request. Home Assistant streams the user's
  speech in real time and sends ``audio-stop`` only once its own VAD has heard
  enough silence (0.5-1 s). Waiting for it to start Whisper would add the
  transcription's whole time after that. So the stream is heard as it comes, as
  a room's listener hears it: at the first pause after speech (Silero,
  ``vad.speculate_ms``) the transcript is started at once, and when nothing but
  silence follows until ``audio-stop`` that transcript is the answer, ready by
  then. Speech after the pause makes a new guess at the next one; the final
  transcript is always of the whole stream. Audio sent faster than real time (a
  file, our own remote stage) makes no guesses: its end is moments away.
- ``WakeStream``: a ``detect`` request, on the openWakeWord models asked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import numpy as np

from voiceagent.audio.convert import StreamResampler, int16_to_mono
from voiceagent.config import Config
from voiceagent.stages.protocols import Transcript
from voiceagent.stages.vad import SileroSpeech, SileroVad
from voiceagent.stages.wake import MODEL_RATE, WakeWordDetector

logger = logging.getLogger(__name__)

ASR_RATE = 16000
FRAME = ASR_RATE // 50
"""Samples of one VAD frame (20 ms)."""
AHEAD_S = 0.5
"""A stream this far ahead of real time comes from a file or a remote stage, not a
microphone: its audio-stop is moments away, so no guess is started (it would only
hold the ASR worker that the final transcript needs)."""
JUDGE_AFTER_S = 0.2
"""A stream's pace is judged once it has lasted this long (a file sends all of itself sooner)."""
MAX_AUDIO_S = 60.0
"""Seconds of audio one transcription takes at most (more is refused)."""


def check_format(rate: int, width: int, channels: int) -> None:
    """Audio we take: 16-bit PCM, 1-8 channels, 8-96 kHz."""
    if width != 2 or not 1 <= channels <= 8 or not 8000 <= rate <= 96000:
        raise ValueError(f"audio of {width} bytes a sample, {channels} channels at {rate} Hz: "
                         "we take 16-bit PCM (width 2), 1-8 channels, 8-96 kHz")


class AsrStream:
    """One transcription's audio at 16 kHz, with its speculative transcript.

    ``transcribe`` runs Whisper (on the ASR worker) on the audio given; ``vad``
    gives the connection's Silero (kept between its streams: a fresh state needs
    ~0.1 s to settle), asked for only when a live stream needs it: loading one
    costs a request sent all at once more than the hop itself."""

    def __init__(self, cfg: Config, transcribe: Callable[[np.ndarray], Awaitable[Transcript]],
                 vad: Callable[[], SileroVad], rate: int = ASR_RATE,
                 clock: Callable[[], float] | None = None) -> None:
        """``clock``: seconds, for telling a live stream from a file (default: the loop's)."""
        self.transcribe = transcribe
        self._vad = vad
        self._on, self._off = cfg.vad.speech_on, cfg.vad.speech_off
        self.speech: SileroSpeech | None = None
        self.speculate_frames = max(1, cfg.vad.speculate_ms // 20)
        self.rate = rate
        self.resampler = StreamResampler(rate, ASR_RATE)
        self.parts: list[np.ndarray] = []
        self.samples = 0
        self._unheard = np.zeros(0, np.float32)
        self._spoke = False
        self._silent = 0
        """Silent frames since the last speech."""
        self.guess: asyncio.Task[Transcript] | None = None
        """The transcript started at the last pause; stale once speech follows it."""
        self._stale = False
        self.guesses = 0
        self._clock = clock or asyncio.get_running_loop().time
        self._began: float | None = None
        """When the first audio arrived."""

    def feed(self, pcm: bytes, rate: int, width: int, channels: int) -> None:
        """One audio-chunk. ValueError for a format we do not take or too much audio."""
        check_format(rate, width, channels)
        if self._began is None:
            self._began = self._clock()
        if rate != self.rate:  # no audio-start, or it said another rate
            self.rate, self.resampler = rate, StreamResampler(rate, ASR_RATE)
        audio = self.resampler(int16_to_mono(pcm, width, channels))
        if self.samples + audio.size > MAX_AUDIO_S * ASR_RATE:
            raise OverflowError(f"over {MAX_AUDIO_S:g} s of audio")
        self.parts.append(audio)
        self.samples += audio.size
        if not self._live():  # a file's end is moments away: nothing to guess, nothing to hear
            self._unheard = np.zeros(0, np.float32)
            return
        if self.speech is None:
            self.speech = SileroSpeech(self._vad(), self._on, self._off)
        self._unheard = np.concatenate([self._unheard, audio])
        while self._unheard.size >= FRAME:
            frame, self._unheard = self._unheard[:FRAME], self._unheard[FRAME:]
            self._hear(frame)

    def _hear(self, frame: np.ndarray) -> None:
        assert self.speech is not None
        if self.speech.is_speech(frame):
            self._spoke, self._silent = True, 0
            self._stale = self._stale or self.guess is not None
            return
        self._silent += 1
        if self._spoke and self._silent == self.speculate_frames and (self.guess is None or self._stale):
            if self.guess is not None:
                self.guess.cancel()  # its words were not the last
            self.guess = asyncio.ensure_future(self.transcribe(self.audio()))
            self.guess.add_done_callback(_retrieved)
            self._stale = False
            self.guesses += 1

    def _live(self) -> bool:
        """The audio comes at a microphone's pace, not from a file (``AHEAD_S``)."""
        assert self._began is not None
        lasted = self._clock() - self._began
        return lasted >= JUDGE_AFTER_S and self.samples / ASR_RATE <= lasted + AHEAD_S

    def audio(self) -> np.ndarray:
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0] if self.parts else np.zeros(0, np.float32)

    async def final(self) -> Transcript:
        """The transcript of the whole stream: the guess, if only silence followed it."""
        if self.guess is not None and not self._stale:
            try:
                return await self.guess
            except asyncio.CancelledError:
                pass
        self.close()
        return await self.transcribe(self.audio())

    def close(self) -> None:
        if self.guess is not None and not self.guess.done():
            self.guess.cancel()


def _retrieved(task: asyncio.Task) -> None:
    """A guess that failed and was never awaited (speech followed it) is not an error."""
    if not task.cancelled():
        task.exception()


class WakeStream:
    """One ``detect`` stream: its detectors, and what they heard in it."""

    def __init__(self, detectors: list[WakeWordDetector]) -> None:
        self.detectors = detectors
        self.samples = 0
        self.detected = False
        self.rate = MODEL_RATE
        self.resampler = StreamResampler(MODEL_RATE, MODEL_RATE)

    def reset(self, rate: int) -> None:
        """A new stream at ``rate``: nothing heard yet."""
        for detector in self.detectors:
            detector.reset()
        self.samples, self.detected = 0, False
        self.rate, self.resampler = rate, StreamResampler(rate, MODEL_RATE)

    @property
    def ms(self) -> int:
        return self.samples * 1000 // MODEL_RATE

    def detect(self, audio: np.ndarray) -> list[str]:
        """The wake words heard in this block of 16 kHz audio (on the wake worker)."""
        self.samples += audio.size
        heard = [d.model for d in self.detectors if d.detect(audio)]
        self.detected = self.detected or bool(heard)
        return heard
