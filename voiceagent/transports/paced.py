"""Files and pipes as a session's audio: one output block written per input block read.

``PacedDuplex`` does what a sound card does: every time a block of input is
read, a block of the same length is written, so the output is aligned with the
input by construction (output sample k was playing while input sample k was
captured) and there is one clock for every event. It paces a file or pipe in
real time, exactly as a microphone would deliver it; with ``realtime=False`` it
runs in simulated time instead (tests): each block comes once all work started
by the last one is waiting. With a ``RoomEcho`` it also mixes its own output back
into the input, as a loudspeaker in a room would (``voiceagent run --echo``).

It removes the echo of the reply from the input before anything else sees it,
feeding the canceller exactly the samples that went to the output.

``FileTransport`` is a session's file or pipe: ``run`` once through the input
(``voiceagent run``), or forever, the input followed by silence (``serve``).
"""

from __future__ import annotations

import asyncio
import logging
import numpy as np

from voiceagent.aio import race
from voiceagent.audio.echo import EchoCanceller, NoEchoCanceller, RoomEcho
from voiceagent.audio.speaker import Speaker
from voiceagent.audio.streams import BlockInput, BlockOutput, EndlessInput, NullOutput, SilenceInput, WavInput
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.transports.base import BlockHandler, block_samples, make_echo_canceller

logger = logging.getLogger(__name__)


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


def silent_driver(speaker: Speaker, clock: Clock, block_samples: int, start_block: int) -> PacedDuplex:
    """A session's audio while it has none (its device gone, its input failed):
    silence in, the output to nowhere, its timeline going on from ``start_block``."""
    return PacedDuplex(SilenceInput(), NullOutput(), speaker, clock, block_samples, start_block=start_block)


class FileTransport:
    """A session's file or pipe (``input``/``output``, or ``-`` for stdin/stdout).

    ``endless``: the input is followed by silence until stopped (the daemon);
    otherwise the run ends once the input has ended and been answered.
    ``room``: the output mixed back into the input (a simulated loudspeaker)."""

    def __init__(
        self,
        cfg: Config,
        source: BlockInput,
        sink: BlockOutput,
        *,
        endless: bool,
        realtime: bool = True,
        room: RoomEcho | None = None,
        description: str = "file",
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.sink = sink
        self.endless = endless
        self.realtime = realtime
        self.room = room
        self.description = description

    async def run(self, handler: BlockHandler, speaker: Speaker, clock: Clock, stop: asyncio.Event) -> float:
        driver = PacedDuplex(
            EndlessInput(self.source) if self.endless else self.source, self.sink, speaker, clock,
            block_samples(self.cfg), realtime=self.realtime,
            echo_canceller=self._echo_canceller(),
            room=self.room,
        )
        # a finite run ends with its input (as before: no stop to race each read against)
        return await driver.run(handler, stop=stop if self.endless else None)

    def _echo_canceller(self) -> EchoCanceller:
        """None where the input cannot hear the output: a recorded file, with no
        simulated room. Gated AEC3 would spend the first ~0.5 s of the first reply
        finding that out, and meanwhile suppress a user who talks over it
        (measured: an interruption 0.25-0.6 s into the first reply went quiet
        380-540 ms after its onset and lost its first words). A pipe may be a
        microphone beside a loudspeaker, so it keeps the canceller."""
        if self.room is None and isinstance(self.source, WavInput):
            return NoEchoCanceller()
        # A file's output block plays exactly while the next input block is
        # read, so the only delay the canceller does not know is the room's.
        return make_echo_canceller(self.cfg, known_delay_ms=0)

    def close(self) -> None:
        self.sink.close()
        self.source.close()
