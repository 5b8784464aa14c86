"""A network client as a session's audio: its microphone arrives in messages, its
speaker is sent messages (a browser, or any OpenAI Realtime client).

A network client sends its audio when it likes: in bursts of 20-100 ms, late
after a stall, faster than real time (a file), or not at all while it has
nothing to say. The session needs what a sound card gives: one input block and
one output block per block period, on one timeline. ``NetworkTransport``
makes that clock:

- a block of input is taken as soon as it has arrived, but never more than
  ``LEAD_S`` ahead of real time (a client that sends faster is paced, as a
  microphone would be), so the reply is sent at playback pace, at most that
  far ahead of what the client plays;
- when the client has sent nothing for longer than it usually waits between
  messages (``gap_s``), the session hears silence from then on, in real time:
  the end of the user's speech is heard even if the client stops sending with
  it; ``input_done`` (the client's commit) says so at once;
- one block of the reply is pulled per block period, in real time, and handed
  at once to ``send`` with the speaker's playback notices (the start and end of
  each turn's audio); each is paired with an input block, and its notices given
  to the session with it, when that block arrives (at most ``LEAD_S`` later).

A browser's own echo cancellation has removed the reply from what it sends, so
no canceller runs for it; the barge-in gate measures what is left. A client with
none (a Wyoming satellite: a Raspberry Pi's microphone beside its speaker) is
given ours (``echo_canceller``), with each output block as the reference for
the input block it is paired with: the satellite's playback and capture buffers
are the echo delay that AEC3 and ``EchoGatedCanceller`` find and follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Callable

import numpy as np

from voiceagent.audio.aec import EchoCanceller
from voiceagent.audio.speaker import NoticeKind, PlaybackNotice, Speaker
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.transports.base import BlockHandler, block_samples

logger = logging.getLogger(__name__)

LEAD_S = 0.2
"""The most the session runs ahead of real time: what a client may have been sent
of the reply beyond what it has played."""
MIN_GAP_S = 0.06
"""The shortest wait for the client's next message before its silence counts as silence."""
MAX_GAP_S = 0.3
"""The longest such wait (a client that sends in big chunks)."""
MAX_BUFFER_S = 30.0
"""Input waiting to be heard beyond this is refused (a client flooding the session)."""

Send = Callable[[np.ndarray, list[PlaybackNotice]], None]
"""Takes each output block (float32 at the session's rate) and the playback notices pulled with it."""


class NetworkTransport:
    """One network client's audio, at the session's rate (the caller resamples)."""

    def __init__(self, cfg: Config, send: Send, description: str,
                 echo_canceller: EchoCanceller | None = None,
                 new_echo_path: Callable[[], None] | None = None) -> None:
        """``echo_canceller``: for a client that cancels no echo of its own; None: it
        does. ``new_echo_path``: for a client that starts its speaker anew for each
        turn's audio (a Wyoming satellite); called before the input block paired
        with the start of a turn's audio after the output was idle."""
        self.n = block_samples(cfg)
        self.echo_canceller = echo_canceller
        self.new_echo_path = new_echo_path
        self._output_idle = True
        """No turn's audio is being sent: the next one starts the client's speaker anew."""
        self.rate = cfg.audio.sample_rate
        self.send = send
        self.description = description
        self._chunks: deque[np.ndarray] = deque()
        self._buffered = 0
        self._head = 0
        """Samples of the first chunk already taken."""
        self._arrived = asyncio.Event()
        self._last_arrival: float | None = None
        self._interval_s = 0.0
        """The client's usual time between messages (moving average)."""
        self._chunk_s = 0.0
        """How much audio the client's messages usually hold (moving average): a
        client that sends 100 ms at a time is next heard from 100 ms later."""
        self._done = False
        """The client said its input ended for now (commit): silence from now on."""
        self._closed = False
        self.blocks = 0
        """Input blocks heard so far."""
        self._ahead: deque[tuple[np.ndarray, list[PlaybackNotice]]] = deque()
        """Output blocks already pulled and sent, with their notices, waiting for their input block."""

    # ------------------------------------------------------------- the client

    def feed(self, samples: np.ndarray) -> bool:
        """Input from the client (float32 mono at the session's rate); False, and
        nothing kept, if that much is already waiting."""
        if samples.size == 0:
            return True
        if self._buffered + samples.size > MAX_BUFFER_S * self.rate:
            return False
        now = asyncio.get_running_loop().time()
        seconds = samples.size / self.rate
        self._chunk_s = seconds if self._last_arrival is None else 0.8 * self._chunk_s + 0.2 * seconds
        if self._last_arrival is not None:
            interval = now - self._last_arrival
            if interval < 1.0:  # a pause in sending says nothing of its chunk size
                self._interval_s = 0.8 * self._interval_s + 0.2 * interval
        self._last_arrival = now
        self._chunks.append(samples.astype(np.float32, copy=False))
        self._buffered += samples.size
        self._done = False
        self._arrived.set()
        return True

    def input_done(self) -> None:
        """The client's input ended for now: what follows is silence, not a delay."""
        self._done = True
        self._arrived.set()

    def clear(self) -> int:
        """Drop the input not yet heard; returns how many samples."""
        dropped = self._buffered
        self._chunks.clear()
        self._buffered = self._head = 0
        return dropped

    @property
    def buffered_s(self) -> float:
        return self._buffered / self.rate

    def gap_s(self) -> float:
        """How long without a message before the client counts as silent."""
        return min(MAX_GAP_S, max(MIN_GAP_S, 1.5 * max(self._interval_s, self._chunk_s) + 0.02))

    # -------------------------------------------------------------- the clock

    async def run(self, handler: BlockHandler, speaker: Speaker, clock: Clock, stop: asyncio.Event) -> float:
        loop = asyncio.get_running_loop()
        dur = self.n / self.rate
        start = loop.time()
        if self.echo_canceller is None:
            speaker.echo_path = False  # the client cancelled it; the gate measures what is left
        ahead_max = max(1, int(LEAD_S / dur))
        while not stop.is_set() and not self._closed:
            now = loop.time()
            # The reply goes out in real time even while the client's next message is
            # on its way (a client sending 100 ms at a time would otherwise hear it
            # up to 100 ms late): a block pulled now is paired with its input later.
            while len(self._ahead) < ahead_max and start + (self.blocks + len(self._ahead) + 1) * dur <= now:
                self._ahead.append(self._pull(speaker))
            due = start + (self.blocks + 1) * dur
            """When block k's last sample was captured, in real time."""
            next_pull = start + (self.blocks + len(self._ahead) + 1) * dur if len(self._ahead) < ahead_max else None
            if self._buffered >= self.n:
                if due - LEAD_S > now:
                    await self._wait(min(due - LEAD_S, next_pull or due) - now, stop)
                    continue
                block = self._take(self.n)
            else:
                silent_since = (self._last_arrival if self._last_arrival is not None else start) + self.gap_s()
                if self._done:
                    silent_since = now
                wake = max(due, silent_since)
                if wake > now:
                    await self._wait(min(wake, next_pull or wake) - now, stop)
                    continue
                block = self._take(self._buffered)  # the tail the client sent, then silence
                if block.size < self.n:
                    block = np.concatenate([block, np.zeros(self.n - block.size, np.float32)])
            self._step(block, handler, speaker, clock, dur)
            await asyncio.sleep(0)  # a backlog must not starve the other sessions
        return self.blocks * dur

    def _pull(self, speaker: Speaker) -> tuple[np.ndarray, list[PlaybackNotice]]:
        """The next block of the reply, sent at once; it and its notices wait for its input block."""
        out, notices = speaker.pull(self.n)
        self.send(out, notices)
        return out, notices

    def _step(self, block: np.ndarray, handler: BlockHandler, speaker: Speaker, clock: Clock, dur: float) -> None:
        """Input block k with the output block played while it was captured."""
        t = self.blocks * dur
        played, notices = self._ahead.popleft() if self._ahead else self._pull(speaker)
        restarted = False
        for notice in notices:
            if notice.kind is NoticeKind.START and self._output_idle:
                self._output_idle, restarted = False, True
            elif notice.kind is NoticeKind.END:
                self._output_idle = True
        if restarted and self.new_echo_path is not None:
            self.new_echo_path()
        if self.echo_canceller is not None:
            block = self.echo_canceller.process(block, played)
            speaker.echo_path = self.echo_canceller.echo_path
        clock.advance(t + dur)
        for notice in notices:
            handler.on_playback(notice, t + dur + notice.offset / self.rate)
        handler.on_block(block, t)
        self.blocks += 1

    async def _wait(self, seconds: float, stop: asyncio.Event) -> None:
        """Until ``seconds`` pass, input arrives or the session stops."""
        self._arrived.clear()
        waits = [asyncio.ensure_future(self._arrived.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _take(self, count: int) -> np.ndarray:
        parts: list[np.ndarray] = []
        while count > 0 and self._chunks:
            chunk = self._chunks[0]
            part = chunk[self._head : self._head + count]
            parts.append(part)
            count -= part.size
            self._head += part.size
            self._buffered -= part.size
            if self._head >= chunk.size:
                self._chunks.popleft()
                self._head = 0
        if not parts:
            return np.zeros(0, np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        """The client is gone: ``run`` returns at its next block."""
        self._closed = True
        self._arrived.set()
