"""Full-duplex audio clocks: one output block pulled per input block.

Both drivers do what a sound card does: every time a block of input is captured,
a block of the same length is played. That makes the output aligned with the
input by construction (output sample k was playing while input sample k was
captured) and gives one clock for every event.

- ``PacedDuplex`` reads a file or pipe and paces it in real time, exactly as a
  microphone would deliver it, writing the speaker signal to a file or pipe.
  With ``realtime=False`` it runs in simulated time instead (tests): each block
  comes once all work started by the last one is waiting.
  With a ``RoomEcho`` it also mixes its own output back into the input, as a
  loudspeaker in a room would (``voiceagent run --echo``).
- ``DeviceDuplex`` runs a PortAudio duplex stream (sounddevice). When its
  callbacks stop for a while (the process descheduled on a busy box) the input
  lags the output by more from then on; it tells the canceller how far the
  echo moved (``rules.stalls``) so that it stays aligned.

Both remove the echo of the reply from the input before anything else sees it,
feeding the canceller exactly the samples that went to the output: the driver is
the only place that knows which output block was playing while an input block
was captured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voiceagent.aio import race
from voiceagent.audio.echo import EchoCanceller, NoEchoCanceller, RoomEcho
from voiceagent.audio.speaker import PlaybackNotice, Speaker
from voiceagent.audio.streams import BlockInput, BlockOutput
from voiceagent.clock import Clock
from voiceagent.errors import AudioDeviceError
from voiceagent.rules.stalls import MIN_SHIFT_MS, StallWatch

logger = logging.getLogger(__name__)


class BlockHandler(Protocol):
    def on_block(self, block: np.ndarray, t: float) -> None:
        """A captured input block whose first sample is at ``t`` seconds."""
        ...

    def on_playback(self, notice: PlaybackNotice, t: float) -> None: ...

    @property
    def idle(self) -> bool:
        """Nothing in progress: no utterance, no reply being made or played."""
        ...


class PacedDuplex:
    def __init__(
        self,
        source: BlockInput,
        sink: BlockOutput,
        speaker: Speaker,
        clock: Clock,
        block_samples: int,
        realtime: bool = True,
        echo_canceller: EchoCanceller | None = None,
        room: RoomEcho | None = None,
        start_block: int = 0,
    ) -> None:
        self.source = source
        self.sink = sink
        self.speaker = speaker
        self.clock = clock
        self.n = block_samples
        self.rate = speaker.sample_rate
        self.realtime = realtime
        self.echo_canceller = echo_canceller or NoEchoCanceller()
        self.room = room
        self.input_seconds = 0.0
        """Seconds of input read before it ended."""
        self.start_block = start_block
        """Blocks an earlier driver already ran: times go on from there, so that a
        daemon that switches drivers keeps one timeline."""
        self.blocks_done = start_block

    async def run(
        self, handler: BlockHandler, max_tail_s: float = 120.0, stop: asyncio.Event | None = None
    ) -> float:
        """Run until the input has ended and the handler is idle, or ``stop`` is set;
        returns seconds run."""
        loop = asyncio.get_running_loop()
        dur = self.n / self.rate
        start = loop.time()
        k = 0
        ended_at: int | None = None
        # Like a sound card, output has one block of latency: the block pulled
        # after input block k was captured plays while block k+1 is captured.
        self.sink.write(np.zeros(self.n, np.float32))
        playing = np.zeros(self.n, np.float32)
        """The output block playing while the current input block is captured."""
        while stop is None or not stop.is_set():
            block = None
            if ended_at is None:
                if stop is None:
                    block = await self.source.read(self.n)
                else:  # a pipe that sends nothing must not hold up the stop
                    which, block = await race(self.source.read(self.n), stop.wait())
                    if which == 1:
                        break
            if block is None:
                if ended_at is None:
                    ended_at = k
                    self.input_seconds = k * dur
                    logger.info("input ended at %.2f s", k * dur)
                if handler.idle:
                    break
                if (k - ended_at) * dur > max_tail_s:
                    logger.warning("still busy %.0f s after the input ended; stopping", max_tail_s)
                    break
                block = np.zeros(self.n, np.float32)
            if self.realtime:
                delay = start + (k + 1) * dur - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)
            else:
                await _settle()
            if self.room is not None:
                block = self.room.mix(block, playing)
            block = self.echo_canceller.process(block, playing)
            self.speaker.echo_path = self.echo_canceller.echo_path
            out, notices = self.speaker.pull(self.n)
            self.sink.write(out)
            playing = out
            t = (self.start_block + k) * dur
            self.clock.advance(t + dur)
            for notice in notices:
                handler.on_playback(notice, t + dur + notice.offset / self.rate)
            handler.on_block(block, t)
            k += 1
            self.blocks_done = self.start_block + k
        return k * dur


async def _settle(max_turns: int = 10_000) -> None:
    """Simulated time (``realtime=False``): let every task run until each one waits
    for something (the next block, a queue, an event), so that with
    ``InlineWorker`` models work takes no time on the clock and the events are
    the same on every run, however busy the machine."""
    ready = getattr(asyncio.get_running_loop(), "_ready", None)  # CPython's runnable callbacks
    for _ in range(max_turns):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return


class DeviceDuplex:
    """A sounddevice duplex stream; runs until ``stop`` is set."""

    def __init__(
        self,
        speaker: Speaker,
        clock: Clock,
        block_samples: int,
        input_device: int | None,
        output_device: int | None,
        echo_canceller: EchoCanceller | None = None,
        echo_delay_ms: int | None = None,
        start_block: int = 0,
    ) -> None:
        self.speaker = speaker
        self.clock = clock
        self.n = block_samples
        self.rate = speaker.sample_rate
        self.devices = (input_device, output_device)
        self.echo_canceller = echo_canceller
        self.echo_delay_ms = echo_delay_ms
        """Fixed play-to-capture delay for the canceller; None: the stream's reported latency."""
        self.start_block = start_block
        """See ``PacedDuplex.start_block``."""
        self.blocks_done = start_block

    async def run(self, handler: BlockHandler, stop: asyncio.Event) -> float:
        import sounddevice as sd

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[np.ndarray, np.ndarray, float, list[PlaybackNotice]]] = (
            asyncio.Queue()
        )
        speaker = self.speaker

        last_call: list[float] = []

        def callback(indata, outdata, frames, time_info, status) -> None:  # audio thread
            now = time.monotonic()
            gap = now - last_call[0] if last_call else None
            last_call[:] = [now]
            if status:
                logger.debug("audio stream status: %s", status)
            out, notices = speaker.pull(frames)
            outdata[:, 0] = out
            # How long after this input was captured the output written now is
            # heard: the play-to-capture delay of its echo.
            latency = time_info.outputBufferDacTime - time_info.inputBufferAdcTime
            timing = _Timing(latency, gap, bool(status.output_underflow or status.input_overflow))
            loop.call_soon_threadsafe(
                queue.put_nowait, (indata[:, 0].copy(), out, timing, notices)
            )

        try:
            stream = sd.Stream(
                samplerate=self.rate,
                blocksize=self.n,
                dtype="float32",
                channels=1,
                device=self.devices,
                callback=callback,
                latency="low",
            )
        except (sd.PortAudioError, ValueError) as err:
            raise AudioDeviceError(
                f"cannot open audio devices {self.devices}: {err}",
                "run 'voiceagent devices' to list them and set audio.input_device/output_device",
            ) from None
        canceller = self.echo_canceller or NoEchoCanceller()
        delay_ms = self.echo_delay_ms
        if delay_ms is None:
            # Some hosts report no buffer times; the stream's nominal latency is next best.
            delay_ms = _hint(sum(stream.latency))
        canceller.set_delay_ms(delay_ms)
        logger.info("echo canceller delay %d ms", delay_ms)
        try:
            return await self._run_stream(stream, queue, handler, stop, canceller, delay_ms)
        except sd.PortAudioError as err:  # starting or closing a device that just went away
            raise AudioDeviceError(
                f"the audio device failed: {err}", "check the device and run 'voiceagent devices'"
            ) from None

    async def _run_stream(self, stream, queue, handler, stop, canceller, delay_ms) -> float:  # type: ignore[no-untyped-def]
        dur = self.n / self.rate
        k = 0
        stalls = StallWatch(1000 * dur)
        try:
            stream.start()
            while not stop.is_set():
                try:
                    which, item = await race(queue.get(), stop.wait(), timeout=2.0)
                except TimeoutError:
                    raise AudioDeviceError(
                        "the audio device stopped delivering audio (unplugged or taken by another program?)",
                        "check the device and run 'voiceagent devices'",
                    ) from None
                if which == 1:
                    break
                block, out, timing, notices = item
                latency = timing.latency_s
                if self.echo_delay_ms is None and latency > 0 and k < 5:
                    # AEC3 takes its delay hint before playback starts (it then
                    # tracks the delay itself), so only the first blocks matter.
                    measured = _hint(latency)
                    if abs(measured - delay_ms) > 5:
                        delay_ms = measured
                        canceller.set_delay_ms(delay_ms)
                        logger.info("echo canceller delay %d ms (stream latency)", delay_ms)
                self._follow_stalls(stalls, timing, canceller)
                block = canceller.process(block, out)
                self.speaker.echo_path = canceller.echo_path
                t = (self.start_block + k) * dur
                self.clock.advance(t + dur)
                for notice in notices:
                    handler.on_playback(notice, t + notice.offset / self.rate)
                handler.on_block(block, t)
                k += 1
                self.blocks_done = self.start_block + k
        finally:
            # Not stream.stop() (what ``with stream`` does): Pa_StopStream waits for
            # the device to play out its buffers, and a suspended or stalled one
            # never does, which blocked the event loop (MQTT, SIGTERM) until it
            # resumed. Closing a stream that is still running aborts it at once.
            stream.close(ignore_errors=True)
        return k * dur

    @staticmethod
    def _follow_stalls(stalls: StallWatch, timing: _Timing, canceller: EchoCanceller) -> None:
        """Keep the canceller aligned when a stall or an underrun has moved the
        echo in the stream (``rules.stalls``), before it cancels the block."""
        gap_ms = None if timing.gap_s is None else 1000 * timing.gap_s
        moved = stalls.observe(gap_ms, 1000 * timing.latency_s, timing.xrun)
        if moved is None:
            return
        canceller.realign(moved.shift_ms)
        what = f"stalled {moved.stall_ms:.0f} ms" if moved.stall_ms else "ran dry"
        if not moved.measured:
            logger.info("audio stream %s: echo canceller to re-estimate the echo delay", what)
        else:
            # A gap just over the threshold may move the echo by a millisecond
            # or two: worth following, not worth a line.
            level = logging.INFO if abs(moved.shift_ms) >= MIN_SHIFT_MS else logging.DEBUG
            logger.log(level, "audio stream %s: the echo comes %+.0f ms later, echo canceller realigned",
                       what, moved.shift_ms)


@dataclass(frozen=True)
class _Timing:
    """What the audio callback saw of the stream's timing, with its block."""

    latency_s: float
    """Seconds from the block's capture to the playing of the output written
    with it, as the host reports (0 or less: not reported)."""
    gap_s: float | None
    """Seconds since the previous callback (None for the first)."""
    xrun: bool
    """The stream flagged an output underflow or an input overflow."""


def _hint(latency_s: float) -> int:
    """AEC3 delay hint from a reported latency, erring low.

    A hint that is too high leaks echo for the first seconds; one that is too
    low is found by AEC3's own delay estimator within about a second.
    """
    return max(0, min(1000, round(latency_s * 1000) - 20))
