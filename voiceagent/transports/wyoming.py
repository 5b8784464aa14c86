"""A Wyoming satellite (``wyoming-satellite`` on a Raspberry Pi, a speaker box) as a
room's microphone and speaker: ``satellites: [{name: den, wyoming: tcp://HOST:PORT}]``.

voiceagent is the satellite's brain, as Home Assistant would be: it connects,
sends ``run-satellite``, and the satellite streams its microphone
(``audio-chunk``s) and plays what it is sent (``audio-start``, ``audio-chunk``s,
``audio-stop``). The session's clock is a ``NetworkTransport`` that runs for the
room's whole life: while the satellite is away the room hears silence (its
timers and Home Assistant's commands still work) and its replies go nowhere;
the connection is retried every second at first, backing off to ``RETRY_MAX_S``.

Its microphone hears its own speaker (wyoming-satellite cancels no echo), so the
session's echo canceller runs on what it sends (``echo:``, as for a sound card).

Barge-in as far as the protocol allows: audio already sent cannot be taken back,
so the reply is sent at playback pace with a small lead (``web.LEAD_S``), and a
reply that is cut ends at once with ``audio-stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event, async_write_event
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import RunSatellite
from wyoming.wake import Detection

from voiceagent.audio.convert import float_to_int16_bytes, int16_to_mono, resample
from voiceagent.audio.echo import EchoGatedCanceller
from voiceagent.audio.speaker import NoticeKind, PlaybackNotice, Speaker
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.config.sections import split_wyoming_uri
from voiceagent.log_limit import LogLimiter
from voiceagent.transports.base import BlockHandler, make_echo_canceller
from voiceagent.transports.web import NetworkTransport
from voiceagent.wyoming_bounded import HEADER_LIMIT, BadInput, read_event

logger = logging.getLogger(__name__)

RETRY_MIN_S = 1.0
RETRY_MAX_S = 8.0
"""The longest wait between two attempts to reach a satellite that is away."""
MAX_QUEUED = 500
"""Events waiting to be written (a few seconds of reply): beyond, the satellite is stuck."""


class WyomingSatelliteTransport:
    def __init__(self, cfg: Config, uri: str) -> None:
        self.cfg = cfg
        self.uri = uri
        self.rate = cfg.audio.sample_rate
        self.description = f"Wyoming satellite {uri}"
        # wyoming-satellite cancels no echo: its microphone hears its speaker, so ours
        # runs here. It starts its speaker program anew for each reply (closed at
        # audio-stop), which takes 60-200 ms: each reply's echo has a delay of its own.
        self.echo_canceller = make_echo_canceller(cfg, network=True)
        self.clock_transport = NetworkTransport(cfg, self._play, self.description, self.echo_canceller,
                                                new_echo_path=self._new_echo_path)
        self._out: asyncio.Queue[Event] | None = None
        """Events for the connected satellite; None while it is away."""
        self._playing: int | None = None
        """The turn whose audio is being sent (between audio-start and audio-stop)."""
        self.connected = asyncio.Event()
        self._handler: BlockHandler | None = None
        self._bad = LogLimiter(logger)
        self._woke_recently = False
        """A detection came just before its run-pipeline: one wake, not two."""

    async def run(self, handler: BlockHandler, speaker: Speaker, clock: Clock, stop: asyncio.Event) -> float:
        self._handler = handler
        link = asyncio.ensure_future(self._keep_connected(stop))
        try:
            return await self.clock_transport.run(handler, speaker, clock, stop)
        finally:
            link.cancel()
            await asyncio.gather(link, return_exceptions=True)

    # ------------------------------------------------------------ the connection

    async def _keep_connected(self, stop: asyncio.Event) -> None:
        wait = RETRY_MIN_S
        while not stop.is_set():
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await asyncio.open_connection(*split_wyoming_uri(self.uri), limit=HEADER_LIMIT)
                logger.info("connected to the satellite at %s", self.uri)
                wait = RETRY_MIN_S
                await self._serve(reader, writer, stop)
            except BadInput as err:
                logger.warning("satellite %s sent %s; trying again in %g s", self.uri, err, wait)
            except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                logger.warning("satellite %s: %s; trying again in %g s", self.uri, err or type(err).__name__, wait)
            finally:
                if writer is not None:
                    writer.close()
                self._out = None
                self._playing = None
                self.connected.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            wait = min(RETRY_MAX_S, wait * 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
        out: asyncio.Queue[Event] = asyncio.Queue()
        await async_write_event(RunSatellite().event(), writer)
        self._out = out
        self.connected.set()
        sending = asyncio.ensure_future(self._write(writer, out))
        try:
            while not stop.is_set():
                event = await read_event(reader)
                if event is None:
                    raise OSError("the satellite closed the connection")
                if sending.done():
                    sending.result()  # the write failed: say why
                try:
                    self._on_event(event)
                except (ValueError, KeyError, TypeError, AttributeError) as err:  # malformed: skipped
                    self._bad.log(logging.WARNING, event.type, "satellite %s sent a bad %s event: %s",
                                  self.uri, event.type[:40], str(err)[:200])
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)

    async def _write(self, writer: asyncio.StreamWriter, out: asyncio.Queue[Event]) -> None:
        while True:
            await async_write_event(await out.get(), writer)

    def _on_event(self, event: Event) -> None:
        if AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            samples = int16_to_mono(chunk.audio, chunk.width, chunk.channels)
            if chunk.rate != self.rate:
                samples = resample(samples, chunk.rate, self.rate)
            if not self.clock_transport.feed(samples):
                logger.warning("satellite %s sends audio faster than real time: dropped", self.uri)
        elif Ping.is_type(event.type):
            self._send(Pong().event())
        elif Detection.is_type(event.type):  # the satellite's own wake word
            self._woken(Detection.from_event(event).name or "satellite")
        elif RunPipeline.is_type(event.type):
            if RunPipeline.from_event(event).start_stage is not PipelineStage.WAKE and not self._woke_recently:
                self._woken("satellite")  # it woke on its own and streams the request
            self._woke_recently = False
        # streaming-started, played...: nothing to do; the session listens

    def _new_echo_path(self) -> None:
        if isinstance(self.echo_canceller, EchoGatedCanceller):
            self.echo_canceller.new_echo_path()

    def _woken(self, name: str) -> None:
        if self._handler is not None:
            self._handler.on_wake(name, self.clock_transport.blocks * self.clock_transport.n / self.rate)
        self._woke_recently = True

    # ------------------------------------------------------------ the speaker

    def _send(self, event: Event) -> None:
        out = self._out
        if out is None:
            return  # the satellite is away: the reply goes nowhere
        if out.qsize() >= MAX_QUEUED:
            logger.warning("satellite %s does not take what it is sent: dropped", self.uri)
            return
        out.put_nowait(event)

    def _play(self, block: np.ndarray, notices: list[PlaybackNotice]) -> None:
        """One output block as it plays: each turn's audio between audio-start and audio-stop."""
        start = 0
        for notice in notices:
            if notice.kind is NoticeKind.START and self._playing is None:
                self._playing = notice.turn
                start = notice.offset
                self._send(AudioStart(rate=self.rate, width=2, channels=1).event())
            elif notice.kind is NoticeKind.END and notice.turn == self._playing:
                self._chunk(block[start : notice.offset])
                self._send(AudioStop().event())
                self._playing = None
                start = notice.offset
        if self._playing is not None:
            self._chunk(block[start:])

    def _chunk(self, samples: np.ndarray) -> None:
        if samples.size:
            self._send(AudioChunk(rate=self.rate, width=2, channels=1, audio=float_to_int16_bytes(samples)).event())

    def close(self) -> None:
        self.clock_transport.close()
