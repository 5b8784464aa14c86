"""A pipecat voice bot that converses with a WAV file in real time.

Standalone script, run with the interpreter of ``.venv-pipecat`` (``make
pipecat-venv``) by :mod:`voiceagent.bench.pipecat_peer`; it must not import
voiceagent (the project venv is not on its path) and voiceagent must not import
it (pipecat is not in the project venv).

The pipeline is pipecat's standard local one::

    input -> WhisperSTTService -> user aggregator (Silero VAD, smart-turn v3)
          -> OpenAILLMService (llama-cpp-python's OpenAI-compatible server)
          -> PiperTTSService -> output -> assistant aggregator

The transport is a simulated full-duplex sound card with a 20 ms period driven
by the wall clock: at the start of period ``i`` it takes 20 ms from the playback
buffer (zeros on underrun) as output samples ``[320 i, 320 (i+1))`` and at its
end it delivers input samples ``[320 i, 320 (i+1))`` to the pipeline. The
output WAV is therefore sample-aligned with the input: output sample ``k`` is
what the bot played while input sample ``k`` was being captured. Writes to the
playback buffer block while it holds 40 ms or more, like a blocking write to a
sound card, so pipecat's own output pacing runs as it would on a device.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

RATE = 16000
PERIOD = 320  # samples: 20 ms at 16 kHz
PERIOD_S = PERIOD / RATE
PLAYBACK_HIGH_WATER = 2 * PERIOD  # a write waits while this much is queued


class SoundCard:
    """A wall-clock driven full-duplex card: a WAV as microphone, an array as speaker."""

    def __init__(self, mic: np.ndarray) -> None:
        n_periods = -(-len(mic) // PERIOD)
        self.mic = np.zeros(n_periods * PERIOD, dtype=np.int16)
        self.mic[: len(mic)] = mic
        self.n_samples = len(mic)
        self.speaker = np.zeros(n_periods * PERIOD, dtype=np.int16)
        self.n_periods = n_periods
        self._playback = bytearray()
        self._space = asyncio.Event()
        self.period = 0  # the period being captured and played now
        self.finished = asyncio.Event()
        self.underruns = 0
        self.max_lag_s = 0.0
        self.t0 = 0.0

    def position_s(self) -> float:
        return self.period * PERIOD_S

    async def write(self, pcm: bytes) -> None:
        """Queue audio for playback, blocking like a sound card's write."""
        while len(self._playback) >= 2 * PLAYBACK_HIGH_WATER and not self.finished.is_set():
            self._space.clear()
            await self._space.wait()
        if not self.finished.is_set():
            self._playback += pcm

    def _play_period(self, i: int) -> None:
        n = min(len(self._playback) // 2, PERIOD)
        if n:
            chunk = np.frombuffer(bytes(self._playback[: 2 * n]), dtype=np.int16)
            self.speaker[i * PERIOD : i * PERIOD + n] = chunk
            del self._playback[: 2 * n]
            if n < PERIOD:
                self.underruns += 1
        self._space.set()

    async def run(self, deliver) -> None:
        """Play and capture every period on time; ``deliver(pcm)`` gets each input period."""
        loop = asyncio.get_running_loop()
        self.t0 = loop.time()
        for i in range(self.n_periods):
            self.period = i
            self._play_period(i)  # plays during [t0 + i*P, t0 + (i+1)*P)
            deadline = self.t0 + (i + 1) * PERIOD_S
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.max_lag_s = max(self.max_lag_s, -delay)
            await deliver(self.mic[i * PERIOD : (i + 1) * PERIOD].tobytes())
        self.period = self.n_periods
        self.finished.set()
        self._space.set()


class FileInputTransport(BaseInputTransport):
    def __init__(self, card: SoundCard, params: TransportParams) -> None:
        super().__init__(params)
        self._card = card
        self._clock: asyncio.Task | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._clock is None:
            self._clock = self.create_task(self._card.run(self._deliver), "soundcard")

    async def _deliver(self, pcm: bytes) -> None:
        await self.push_audio_frame(
            InputAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1)
        )

    async def _stop_clock(self) -> None:
        if self._clock is not None and not self._clock.done():
            await self.cancel_task(self._clock)
        self._clock = None

    async def stop(self, frame) -> None:
        await self._stop_clock()
        await super().stop(frame)

    async def cancel(self, frame) -> None:
        await self._stop_clock()
        await super().cancel(frame)


class FileOutputTransport(BaseOutputTransport):
    def __init__(self, card: SoundCard, params: TransportParams) -> None:
        super().__init__(params)
        self._card = card

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if frame.sample_rate != RATE or frame.num_channels != 1:
            raise RuntimeError(f"unexpected output format {frame.sample_rate} Hz x{frame.num_channels}")
        await self._card.write(frame.audio)
        return True


class FileTransport(BaseTransport):
    def __init__(self, card: SoundCard) -> None:
        super().__init__()
        params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=RATE,
            audio_out_enabled=True,
            audio_out_sample_rate=RATE,
            audio_out_end_silence_secs=0,
        )
        self._input = FileInputTransport(card, params)
        self._output = FileOutputTransport(card, params)

    def input(self) -> FrameProcessor:
        return self._input

    def output(self) -> FrameProcessor:
        return self._output


class EventLog(FrameProcessor):
    """Pass-through that logs transcripts and replies with their timeline position."""

    def __init__(self, card: SoundCard, sink, **kwargs) -> None:
        super().__init__(**kwargs)
        self._card = card
        self._sink = sink
        self._reply: list[str] = []

    def _emit(self, kind: str, **data) -> None:
        record = {"t": round(self._card.position_s(), 3), "event": kind, **data}
        print(json.dumps(record), file=self._sink, flush=True)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            self._emit("transcript", text=frame.text.strip())
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._reply = []
            self._emit("llm_start")
        elif isinstance(frame, LLMTextFrame):
            if not self._reply:
                self._emit("llm_first_token")
            self._reply.append(frame.text)
        elif isinstance(frame, LLMFullResponseEndFrame):
            self._emit("llm_end", text="".join(self._reply).strip())
        await self.push_frame(frame, direction)


def _read_mic(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="int16", always_2d=True)
    if rate != RATE:
        raise SystemExit(f"{path}: {rate} Hz; the bot needs {RATE} Hz")
    return audio[:, 0].copy()


def _warm_up(stt: WhisperSTTService, tts: PiperTTSService, beam_size: int) -> None:
    """First inference of each model, off the clock (voiceagent also loads before it listens)."""
    model = stt._model  # noqa: SLF001 - pipecat exposes no public handle
    list(model.transcribe(np.zeros(RATE, dtype=np.float32), language="en", beam_size=beam_size)[0])
    for _ in tts._voice.synthesize("Hello."):  # noqa: SLF001
        pass


async def main(args: argparse.Namespace) -> int:
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    events = open(args.events, "w", encoding="utf-8") if args.events else sys.stdout

    card = SoundCard(_read_mic(args.input))
    transport = FileTransport(card)

    stt = WhisperSTTService(
        device=args.asr_device,
        compute_type=args.asr_compute_type,
        settings=WhisperSTTService.Settings(model=str(args.asr_model), language=Language.EN),
    )
    if args.asr_beam_size is not None:
        # pipecat calls WhisperModel.transcribe() with faster-whisper's default
        # beam_size=5; use the same decoding as the system it is compared with.
        stt._model.transcribe = functools.partial(  # noqa: SLF001
            stt._model.transcribe, beam_size=args.asr_beam_size  # noqa: SLF001
        )
    llm = OpenAILLMService(
        api_key="not-needed",
        base_url=args.llm_url,
        settings=OpenAILLMService.Settings(
            model="local",
            system_instruction=args.system_prompt,
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.max_tokens,
            # llama-cpp-python's server takes these sampling keys beyond OpenAI's
            extra={"extra_body": {"top_k": args.top_k, "repeat_penalty": args.repeat_penalty}},
        ),
    )
    voice = Path(args.tts_model)
    tts = PiperTTSService(
        download_dir=voice.parent,
        use_cuda=args.tts_cuda,
        settings=PiperTTSService.Settings(voice=voice.name.removesuffix(".onnx")),
    )
    _warm_up(stt, tts, args.asr_beam_size or 5)

    vad = SileroVADAnalyzer(params=VADParams())  # pipecat defaults: confidence 0.7, start 0.2 s, stop 0.2 s
    # No user_turn_strategies: pipecat's defaults, i.e. start on VAD (or on a
    # transcript), stop when the smart-turn v3 model (LocalSmartTurnAnalyzerV3,
    # bundled ONNX, 1 thread) calls the turn complete and the transcript is in.
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=vad)
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            EventLog(card, events, name="asr-log"),
            aggregators.user(),
            llm,
            EventLog(card, events, name="llm-log"),
            tts,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    task = PipelineWorker(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=RATE,
            audio_out_sample_rate=RATE,
            enable_metrics=True,
        ),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )

    async def stop_when_done() -> None:
        await card.finished.wait()
        await task.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(task)
    watcher = asyncio.create_task(stop_when_done())
    started = time.monotonic()
    try:
        await runner.run()
    finally:
        watcher.cancel()
    if not card.finished.is_set():
        print(f"pipeline ended after {time.monotonic() - started:.1f} s, before the input did",
              file=sys.stderr)
        return 1

    args.output.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(args.output), card.speaker[: card.n_samples], RATE, subtype="PCM_16")
    summary = {
        "event": "done",
        "seconds": round(card.n_samples / RATE, 3),
        "wall_s": round(time.monotonic() - started, 3),
        "max_clock_lag_s": round(card.max_lag_s, 4),
        "underruns": card.underruns,
    }
    print(json.dumps(summary), file=events, flush=True)
    if events is not sys.stdout:
        events.close()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", type=Path, required=True, help="16 kHz mono WAV: the microphone")
    p.add_argument("--output", type=Path, required=True, help="WAV written: the speaker")
    p.add_argument("--events", type=Path, help="JSON lines of transcripts and replies")
    p.add_argument("--asr-model", type=Path, required=True, help="CTranslate2 Whisper directory")
    p.add_argument("--asr-device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--asr-compute-type", default="default")
    p.add_argument("--asr-beam-size", type=int, default=None,
                   help="override pipecat's beam size (faster-whisper default 5)")
    p.add_argument("--tts-model", type=Path, required=True, help="piper voice .onnx (+.onnx.json)")
    p.add_argument("--tts-cuda", action="store_true", help="piper on onnxruntime CUDA")
    p.add_argument("--llm-url", required=True, help="OpenAI-compatible base URL, .../v1")
    p.add_argument("--system-prompt", required=True)
    p.add_argument("--max-tokens", type=int, default=60)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--repeat-penalty", type=float, default=1.1)
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
