"""Wiring: a conversation on a driver, with its event sinks (the models are
loaded by ``voiceagent.stages.loading``).

Shared by ``run``, ``talk`` and ``demo`` (and later ``serve``): each picks a
driver (paced file/pipe, or sound device), and gets the same conversation, the
same events and the same latency table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Callable, Iterator, TextIO

from voiceagent.audio.duplex import DeviceDuplex, PacedDuplex
from voiceagent.audio.echo import (
    EchoCanceller,
    EchoGatedCanceller,
    EchoSpec,
    NoEchoCanceller,
    RoomEcho,
    WebRtcEchoCanceller,
)
from voiceagent.audio.speaker import Speaker
from voiceagent.audio.streams import BlockInput, BlockOutput
from voiceagent.clock import TimelineClock
from voiceagent.config import Config
from voiceagent.dialogue.conversation import Conversation
from voiceagent.events import (
    AnyEvent,
    AsrFinal,
    AsrPartial,
    ErrorEvent,
    EventBus,
    JsonlEventLog,
    Reason,
    TurnEnd,
)
from voiceagent.home.protocol import Commands
from voiceagent.metrics import LatencyTracker
from voiceagent.rules.wake_gate import WakeGate
from voiceagent.stages.loading import Models
from voiceagent.stages.vad import SileroVad, WebRtcVad

logger = logging.getLogger(__name__)


class ConsoleDisplay:
    """Prints the conversation as it happens (to stderr: stdout may carry PCM)."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out

    def __call__(self, event: AnyEvent) -> None:
        match event:
            case AsrFinal(turn=turn, text=text):
                print(f"[{event.t:7.2f}s] turn {turn} you:       {text}", file=self.out)
            case TurnEnd(turn=turn, reply=reply, reason=Reason.ANSWERED):
                print(f"[{event.t:7.2f}s] turn {turn} assistant: {reply}", file=self.out)
            case TurnEnd(turn=turn, reason=reason):
                print(f"[{event.t:7.2f}s] turn {turn} ({reason.replace('_', ' ')})", file=self.out)
            case ErrorEvent(stage=stage, text=text):
                print(f"[{event.t:7.2f}s] error in {stage}: {text}", file=self.out)
            case AsrPartial(text=text):
                logger.info("partial: %s", text)
            case _:
                pass


@contextlib.contextmanager
def event_sinks(
    events_path: str | None, display: bool = True
) -> Iterator[tuple[EventBus, LatencyTracker]]:
    """An event bus with the latency tracker, the console and the JSONL log."""
    bus = EventBus()
    tracker = LatencyTracker()
    bus.subscribe(tracker)
    if display:
        bus.subscribe(ConsoleDisplay())
    log_file = None
    try:
        if events_path:
            log_file = open(events_path, "w", encoding="utf-8")
            bus.subscribe(JsonlEventLog(log_file))
        yield bus, tracker
    finally:
        if log_file is not None:
            log_file.close()


def build_conversation(
    cfg: Config, models: Models, bus: EventBus, gate: WakeGate | None = None, commands: Commands | None = None
) -> tuple[Conversation, Speaker, TimelineClock]:
    clock = TimelineClock()
    speaker = Speaker(cfg.audio.sample_rate, cfg.audio.output_gain_db)
    vad = WebRtcVad(cfg.vad.aggressiveness, cfg.audio.sample_rate, cfg.vad.frame_ms)
    second_stage = None
    if cfg.barge_in.enabled and cfg.barge_in.second_stage == "silero":
        second_stage = SileroVad(cfg.audio.sample_rate)
    conv = Conversation(
        cfg, vad, models.transcriber, models.chat, models.synthesizer, speaker, bus, clock,
        second_stage=second_stage, end_model=models.end_model, gate=gate,
        prompt_cache=models.prompt_cache, end_of_message=models.end_of_message, commands=commands,
    )
    return conv, speaker, clock


def make_echo_canceller(cfg: Config, known_delay_ms: int = 0) -> EchoCanceller:
    """The configured canceller; ``known_delay_ms`` is used when the delay is ``auto``."""
    if cfg.echo.canceller == "none":
        return NoEchoCanceller()
    delay = known_delay_ms if cfg.echo.delay_ms == "auto" else cfg.echo.delay_ms
    aec = WebRtcEchoCanceller(cfg.audio.sample_rate, delay_ms=delay)
    if not cfg.echo.only_when_echo:
        return aec
    return EchoGatedCanceller(aec, cfg.audio.sample_rate)


def block_samples(cfg: Config) -> int:
    return cfg.audio.sample_rate * cfg.vad.frame_ms // 1000


async def run_paced(
    cfg: Config,
    models: Models,
    source: BlockInput,
    sink: BlockOutput,
    bus: EventBus,
    realtime: bool = True,
    echo: EchoSpec | None = None,
    commands: Commands | None = None,
) -> float:
    """Run a conversation over a file/pipe input until it has ended and been answered.

    With ``echo``, the output is mixed back into the input through a simulated room.
    """
    conv, speaker, clock = build_conversation(cfg, models, bus, commands=commands)
    room = RoomEcho(echo.delay_ms, echo.gain_db, cfg.audio.sample_rate) if echo else None
    driver = PacedDuplex(
        source, sink, speaker, clock, block_samples(cfg), realtime=realtime,
        # A file's output block plays exactly while the next input block is
        # read, so the only delay the canceller does not know is the room's.
        echo_canceller=make_echo_canceller(cfg, known_delay_ms=0),
        room=room,
    )
    try:
        return await driver.run(conv)
    finally:
        await conv.aclose()
        sink.close()
        source.close()


async def run_device(
    cfg: Config,
    models: Models,
    input_device: int | None,
    output_device: int | None,
    bus: EventBus,
    duration: float | None = None,
    on_ready: Callable[[], None] | None = None,
) -> float:
    """Live conversation on sound devices until SIGINT/SIGTERM or ``duration`` seconds.

    The house is controlled as by ``serve`` (local intents, timers, and Home
    Assistant if ``homeassistant.url`` is set), without MQTT."""
    from voiceagent.daemon.house import HomeTies

    home = HomeTies(cfg, None)
    conv, speaker, clock = build_conversation(cfg, models, bus, commands=home.control)
    home.attach(conv, models.transcriber)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    timer = loop.call_later(duration, stop.set) if duration else None
    driver = DeviceDuplex(
        speaker, clock, block_samples(cfg), input_device, output_device,
        echo_canceller=make_echo_canceller(cfg),
        echo_delay_ms=None if cfg.echo.delay_ms == "auto" else cfg.echo.delay_ms,
    )
    if on_ready is not None:
        on_ready()
    connection = None
    if home.control is not None and home.control.connection is not None:
        connection = asyncio.ensure_future(home.control.connection.run(stop))
    try:
        return await driver.run(conv, stop)
    finally:
        stop.set()
        home.close()
        if connection is not None:
            await connection
        if timer is not None:
            timer.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await conv.aclose()
