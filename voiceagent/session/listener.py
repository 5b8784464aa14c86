"""Between the audio driver and the conversation: the mute switch and the wake word.

The wake word detector runs on its own worker thread (about 3 ms of CPU per
80 ms of audio) and is fed what the conversation hears, echo-cancelled, so the
assistant's own voice saying "Jarvis" does not wake it.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from voiceagent.audio.speaker import PlaybackNotice
from voiceagent.dialogue.conversation import Conversation
from voiceagent.errors import Stage
from voiceagent.events import ErrorEvent, EventBus, WakeWordDetected
from voiceagent.rules.wake_gate import WakeGate
from voiceagent.stages.wake import CHUNK_MS, WakeWordDetector
from voiceagent.stages.workers import Worker

logger = logging.getLogger(__name__)


class Listener:
    """A ``BlockHandler`` wrapping the conversation."""

    def __init__(
        self,
        conv: Conversation,
        bus: EventBus,
        rate: int,
        detector: WakeWordDetector | None = None,
        gate: WakeGate | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.conv = conv
        self.bus = bus
        self.rate = rate
        self.detector = detector
        self.gate = gate
        self.muted = False
        """The microphone is off: the conversation and the detector hear silence."""
        self._worker = worker
        """The process's wake word worker (each session has its own detector: it
        keeps the state of its audio stream)."""
        if detector is not None and worker is None:
            raise ValueError("a wake word detector needs the wake worker")
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._chunk = rate * CHUNK_MS // 1000
        self._task: asyncio.Task[None] | None = None
        self._failed = False

    def on_block(self, block: np.ndarray, t: float) -> None:
        if self.muted:
            block = np.zeros_like(block)
        self.conv.on_block(block, t)
        if self.detector is None or self._failed:
            return
        self._pending.append(block)
        self._pending_samples += block.size
        # One job at a time: if the detector falls behind, the next job takes
        # everything that piled up (its state must see every sample in order).
        if self._pending_samples >= self._chunk and (self._task is None or self._task.done()):
            audio = np.concatenate(self._pending)
            self._pending, self._pending_samples = [], 0
            end_t = t + block.size / self.rate
            self._task = asyncio.ensure_future(self._detect(audio, end_t))

    async def _detect(self, audio: np.ndarray, end_t: float) -> None:
        assert self.detector is not None and self._worker is not None
        try:
            fired = await self._worker.call(self.detector.detect, audio)
        except Exception as err:  # noqa: BLE001  (whatever TFLite raises, the daemon goes on)
            # Typed requests still work, and the log says why spoken ones are
            # no longer heard; retrying every 80 ms would only flood the log.
            self._failed = True
            logger.exception("wake word detector failed, spoken requests are off until a restart")
            self.bus.publish(ErrorEvent(end_t, 0, stage=Stage.WAKE, text=str(err)))
            return
        if fired:
            probability = self.detector.last_probability
            logger.info("wake word %s (%.2f) at %.2f s", self.detector.model, probability, end_t)
            if self.gate is not None:
                self.gate.heard(end_t)
            self.bus.publish(WakeWordDetected(end_t, 0, self.detector.model, probability))

    def on_playback(self, notice: PlaybackNotice, t: float) -> None:
        self.conv.on_playback(notice, t)

    def on_wake(self, name: str, t: float) -> None:
        """A satellite's own wake word detector fired: as if ours had."""
        logger.info("wake word %s heard by the device at %.2f s", name, t)
        if self.gate is not None:
            self.gate.heard(t)
        self.bus.publish(WakeWordDetected(t, 0, name, 1.0))

    @property
    def idle(self) -> bool:
        return self.conv.idle

    def stop_replies(self) -> None:
        """The output went away: what was playing can no longer be heard."""
        self.conv.stop()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
