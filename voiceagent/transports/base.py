"""What every transport is: how one session's audio comes and goes, at its own clock.

A transport captures the session's input in blocks and, for each block captured,
plays one block of the session's ``Speaker`` (what a sound card does), so that
every event of the session is on one timeline. It knows nothing of the dialogue:
it hands each block to a ``BlockHandler`` (the session's listener) and tells it
when the reply's audio started and stopped playing.

- ``paced``: files and pipes, paced in real time (or in simulated time, tests);
- ``device``: sound devices through PortAudio, retried while a device is gone.

The network transports (a browser over WebSocket, a Wyoming satellite) come here too.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import numpy as np

from voiceagent.audio.echo import EchoCanceller, EchoGatedCanceller, NoEchoCanceller, WebRtcEchoCanceller
from voiceagent.audio.speaker import PlaybackNotice, Speaker
from voiceagent.clock import Clock
from voiceagent.config import Config


class BlockHandler(Protocol):
    def on_block(self, block: np.ndarray, t: float) -> None:
        """A captured input block whose first sample is at ``t`` seconds."""
        ...

    def on_playback(self, notice: PlaybackNotice, t: float) -> None: ...

    def on_wake(self, name: str, t: float) -> None:
        """The device heard its own wake word (a Wyoming satellite's) at ``t``."""
        ...

    @property
    def idle(self) -> bool:
        """Nothing in progress: no utterance, no reply being made or played."""
        ...


class Transport(Protocol):
    """One session's audio path."""

    description: str
    """For the log: ``kitchen.wav -> kitchen-out.wav``, ``devices 2/2``."""

    async def run(self, handler: BlockHandler, speaker: Speaker, clock: Clock, stop: asyncio.Event) -> float:
        """Capture and play until ``stop`` is set (or a finite input has ended and
        been answered, where the transport says so); returns seconds run."""
        ...

    def close(self) -> None:
        """Release files and devices (idempotent)."""
        ...


def block_samples(cfg: Config) -> int:
    return cfg.audio.sample_rate * cfg.vad.frame_ms // 1000


SATELLITE_MAX_DELAY_MS = 800.0
"""The longest echo delay looked for behind a network client's speaker: the
network's lead (``web.LEAD_S``), the speaker program's start (up to 200 ms) and
its buffer (``aplay``: up to 500 ms)."""


def make_echo_canceller(cfg: Config, known_delay_ms: int = 0, network: bool = False) -> EchoCanceller:
    """The configured canceller; ``known_delay_ms`` is used when the delay is ``auto``.
    ``network``: for a client's microphone and speaker across the network (a
    Wyoming satellite), whose echo may come much later than a sound card's."""
    if cfg.echo.canceller == "none":
        return NoEchoCanceller()
    delay = known_delay_ms if cfg.echo.delay_ms == "auto" else cfg.echo.delay_ms
    aec = WebRtcEchoCanceller(cfg.audio.sample_rate, delay_ms=delay)
    if not cfg.echo.only_when_echo:
        return aec
    if network:
        # No verdict of "no echo" before the playback has outlasted the longest
        # delay (measured: at 0.4 s of a reply whose echo was 360 ms late, "no
        # echo" was decided, and the echo then cut the reply); and the tail after
        # playback covers that delay too.
        late_s = SATELLITE_MAX_DELAY_MS / 1000
        return EchoGatedCanceller(aec, cfg.audio.sample_rate, max_delay_ms=SATELLITE_MAX_DELAY_MS,
                                  first_verdict_s=late_s + 0.4, tail_s=late_s + 0.3)
    return EchoGatedCanceller(aec, cfg.audio.sample_rate)
