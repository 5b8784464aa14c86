"""A client of the OpenAI Realtime API that talks as a person would: it streams a
recording in real time through the official ``openai`` SDK and records what
comes back, timed (the web endpoint's tests and ``benchmarks/web_v2v.py``)."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RATE = 24000
"""The API's default PCM16 rate, which the client streams at."""


@dataclass
class RealtimeRun:
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """(seconds since the first sample was sent, the event) for every event but audio."""
    audio_at: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the first sample was sent, samples) of each audio delta."""
    audio: list[np.ndarray] = field(default_factory=list)

    def of(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.events if e.get("type") == kind]

    def first(self, kind: str, after: float = 0.0) -> tuple[float, dict[str, Any]] | None:
        return next(((t, e) for t, e in self.of(kind) if t >= after), None)

    def first_audio(self, after: float = 0.0) -> float | None:
        return next((t for t, _ in self.audio_at if t >= after), None)

    @property
    def reply_audio(self) -> np.ndarray:
        """Every reply's audio, float32 at ``RATE``."""
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)


async def talk(base: str, token: str, speech: np.ndarray, *, rate: int = 16000, chunk_s: float = 0.1,
               tail_s: float = 5.0, transcribe: bool = True) -> RealtimeRun:
    """Stream ``speech`` (mono float32 at ``rate``) to ``base`` (``http://host:port``)
    in real time, ``chunk_s`` a message, then ``tail_s`` of silence, and collect
    everything that comes back meanwhile."""
    import soxr
    from openai import AsyncOpenAI

    audio = soxr.resample(speech, rate, RATE) if rate != RATE else speech
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    pcm = np.concatenate([pcm, np.zeros(int(tail_s * RATE), "<i2")])
    step = int(chunk_s * RATE)
    ws = base.replace("http", "ws", 1)
    client = AsyncOpenAI(api_key=token, base_url=f"{base}/v1", websocket_base_url=f"{ws}/v1")
    run = RealtimeRun()
    async with client.realtime.connect(model="voiceagent") as conn:
        session: dict[str, Any] = {"type": "realtime", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": RATE},
            "transcription": {"model": "whisper-1"} if transcribe else None}}}
        await conn.session.update(session=session)  # type: ignore[arg-type]
        start = time.monotonic()

        async def send() -> None:
            for i in range(0, pcm.size, step):
                chunk = base64.b64encode(pcm[i : i + step].tobytes()).decode()
                await conn.input_audio_buffer.append(audio=chunk)
                await asyncio.sleep(max(0.0, start + (i + step) / RATE - time.monotonic()))

        async def receive() -> None:
            async for event in conn:
                t = time.monotonic() - start
                if event.type == "response.output_audio.delta":
                    data = np.frombuffer(base64.b64decode(event.delta), "<i2").astype(np.float32) / 32768
                    run.audio_at.append((t, data.size))
                    run.audio.append(data)
                else:
                    run.events.append((t, event.model_dump(exclude_none=True)))

        receiver = asyncio.ensure_future(receive())
        try:
            await send()
            await asyncio.sleep(0.3)  # the last events of the tail
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
    return run
