"""``voiceagent serve``: wiring, the audio loop that survives its device, shutdown.

Start-up order: the config, the audio input/output (a bad file fails at once),
the conversation log, the models, then the event loop with the audio and the
MQTT bridge side by side. The voice loop never waits for the broker: while it is
away the assistant goes on answering, and the bridge publishes the latest
states when it is back.

SIGTERM and SIGINT stop the reply that is playing, publish ``offline``, close
the devices and files, and return within a couple of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, TextIO

from voiceagent import __version__
from voiceagent.aio import race
from voiceagent.app import ConsoleDisplay, block_samples, build_conversation, make_echo_canceller
from voiceagent.audio.duplex import DeviceDuplex, PacedDuplex
from voiceagent.audio.streams import (
    BlockInput,
    BlockOutput,
    EndlessInput,
    NullOutput,
    SilenceInput,
    open_input,
    open_output,
)
from voiceagent.config import Config
from voiceagent.daemon.controls import DaemonControls
from voiceagent.daemon.listener import Listener
from voiceagent.daemon.log import ConversationLog, TurnSummaries, TurnSummary
from voiceagent.daemon.memory import MemoryTrimmer
from voiceagent.daemon.state import AssistantState, StateReporter
from voiceagent.errors import AudioDeviceError, ConfigError
from voiceagent.events import AnyEvent, EventBus, IntentHandled, JsonlEventLog, RequestAccepted
from voiceagent.daemon.house import HomeTies
from voiceagent.mqtt import MqttBridge
from voiceagent.mqtt.discovery import NO_TIMER
from voiceagent.rules.wake_gate import WakeGate
from voiceagent.stages.loading import Models, load_models
from voiceagent.stages.wake import WakeWordDetector

logger = logging.getLogger(__name__)

DEVICE_RETRY_S = 5.0
"""Seconds between attempts to reopen a sound device that went away."""
TICK_S = 0.5
"""Seconds between checks of time-based state (the wake word's listening window)."""


@dataclass(frozen=True)
class ServeOptions:
    input: str | None = None
    """A WAV file or ``-`` (raw PCM on stdin); None: the configured input device."""
    output: str | None = None
    """A WAV file or ``-`` (raw PCM on stdout); None: the configured output device."""
    events: str | None = None
    """Write every event as a JSON line to this file."""


class StatePublisher:
    """Sends the last transcript, reply and voice-to-voice latency to MQTT
    (a ``TurnSummaries`` sink).

    The transcript goes out as soon as the turn is accepted (``RequestAccepted``,
    an event listener), not when its reply has been played: automations that
    react to what was said see it seconds sooner."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge
        self._sent: set[int] = set()

    def on_event(self, event: AnyEvent) -> None:
        match event:
            case RequestAccepted(turn=turn, text=text) if text:
                self._sent.add(turn)
                self.bridge.publish_state("transcript", text)
            case IntentHandled():
                self.bridge.publish_event("intent", event.to_dict())

    def __call__(self, turn: TurnSummary) -> None:
        sent = turn.turn in self._sent
        self._sent.discard(turn.turn)
        if not turn.reason.is_request:
            return
        if turn.transcript and not sent:
            self.bridge.publish_state("transcript", turn.transcript)
        if turn.reply:
            self.bridge.publish_state("reply", turn.reply)
        if turn.latency_ms is not None and turn.source == "voice":  # the sensor is voice-to-voice
            self.bridge.publish_state("latency", str(turn.latency_ms))


def run_serve(cfg: Config, opts: ServeOptions, out: TextIO = sys.stderr) -> int:
    """The daemon, until SIGTERM/SIGINT. Returns the exit status."""
    rate = cfg.audio.sample_rate
    if (opts.input is None) != (opts.output is None):
        raise ConfigError(
            "serve takes --input and --output together (files or pipes), or neither (sound devices)"
        )
    h = cfg.homeassistant
    if h.url:  # an unreadable token file fails now, not after the models have loaded
        cfg.secret(h.token, h.token_file, "homeassistant.token")
    source = open_input(opts.input, rate, cfg.audio.pcm) if opts.input else None
    sink = open_output(opts.output, rate, cfg.audio.pcm) if opts.output else None
    log = ConversationLog(cfg.resolve(cfg.serve.conversation_log)) if cfg.serve.conversation_log else None
    events_file = open(opts.events, "w", encoding="utf-8") if opts.events else None
    try:
        models = load_models(cfg)
        detector = None
        if cfg.wake.model != "none":
            detector = WakeWordDetector(cfg.wake.model, cfg.wake.threshold, rate)
            detector.warm_up()
        code = asyncio.run(_serve(cfg, models, detector, source, sink, log, events_file, out))
    finally:
        if log is not None:
            log.close()
        if events_file is not None:
            events_file.close()
        if sink is not None:
            sink.close()
        if source is not None:
            source.close()
    print("voiceagent serve: stopped", file=out)
    leave_stuck_models(code=code)
    return code


STOP_WAIT_S = 3.0
"""Seconds, after the shutdown, that a model thread still in a call is waited for.
systemd kills the daemon after TimeoutStopSec (10 s in deploy/voiceagent.service);
Python's exit would otherwise wait for the thread however long it takes."""


def _exit_now(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


STUCK_RESTART_S = 300.0
"""Seconds a model may stay stuck in a call that timed out (each request
meanwhile answered with an apology) before the daemon exits with status 1, for
systemd to restart it (``Restart=on-failure``) with the model fresh."""


def leave_stuck_models(
    wait_s: float = STOP_WAIT_S, exit: Callable[[int], object] = _exit_now, code: int = 0
) -> None:
    """Exit now if a model thread (``va-*``, see ``stages.workers``) is still busy
    after ``wait_s``: everything that matters (the logs, the WAV, ``offline``) is
    written and closed by then, and the call's result would be dropped anyway."""
    deadline = time.monotonic() + wait_s
    for thread in threading.enumerate():
        if thread.name.startswith("va-") and thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t.name.startswith("va-") and t.is_alive()]
    if stuck:
        logger.warning("a model is still busy after %g s (%s): exiting without it", wait_s, ", ".join(stuck))
        exit(code)


async def _serve(
    cfg: Config,
    models: Models,
    detector: WakeWordDetector | None,
    source: BlockInput | None,
    sink: BlockOutput | None,
    log: ConversationLog | None,
    events_file: TextIO | None,
    out: TextIO,
) -> int:
    bus = EventBus()
    bus.subscribe(ConsoleDisplay(out))
    if events_file is not None:
        bus.subscribe(JsonlEventLog(events_file))
    summaries = TurnSummaries([log] if log is not None else [])
    bus.subscribe(summaries)
    gate = None
    if detector is not None:
        gate = WakeGate(cfg.wake.gate_settings())
        bus.subscribe(gate.on_event)  # before the state, which asks it
    bridge = None
    if cfg.mqtt.enabled:
        bridge = MqttBridge(cfg, None, __version__)  # its controls need the listener: below
    home = HomeTies(cfg, bridge)
    conv, speaker, clock = build_conversation(cfg, models, bus, gate=gate, commands=home.control)
    listener = Listener(conv, bus, cfg.audio.sample_rate, detector, gate)
    home.attach(conv, models.transcriber)

    controls = None
    if bridge is not None:
        controls = DaemonControls(listener)  # bounds what a flood of commands can start
        bus.subscribe(controls.on_event)
        bridge.set_controls(controls)
        publisher = StatePublisher(bridge)
        summaries.sinks.append(publisher)
        bus.subscribe(publisher.on_event)
        bridge.publish_state("mute", "OFF")
        bridge.publish_state("timer", NO_TIMER)
    reporter = StateReporter(
        lambda state: bridge.publish_state("state", state.value) if bridge is not None else None,
        gate,
    )
    bus.subscribe(reporter)
    if bridge is not None:
        bridge.publish_state("state", AssistantState.IDLE.value)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    wake = f"wake word {cfg.wake.model}" if detector is not None else "no wake word (always listening)"
    mqtt = f"MQTT {cfg.mqtt.host}:{cfg.mqtt.port}" if bridge is not None else "MQTT off"
    ha = f"Home Assistant {cfg.homeassistant.url}" if cfg.homeassistant.url else "no Home Assistant"
    print(f"voiceagent serve: running ({wake}, {mqtt}, {ha}); SIGTERM or Ctrl+C to stop", file=out)

    trimmer = MemoryTrimmer()
    code = 0

    async def tick() -> None:
        nonlocal code
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            reporter.tick(clock.now())
            stuck = [w for w in conv.workers if w.stuck_s > STUCK_RESTART_S]
            if stuck:
                logger.error(
                    "the %s model has been stuck for over %g s: exiting, for systemd to restart it",
                    stuck[0].name, STUCK_RESTART_S,
                )
                code = 1
                stop.set()
            if conv.idle:
                trimmer.idle()
            else:
                trimmer.busy()

    side = [asyncio.ensure_future(tick())]
    if bridge is not None:
        side.append(asyncio.ensure_future(bridge.run(stop)))
    if home.control is not None and home.control.connection is not None:
        side.append(asyncio.ensure_future(home.control.connection.run(stop)))
    try:
        if source is not None and sink is not None:
            await _paced(cfg, listener, speaker, clock, source, sink, stop)
        else:
            await _devices(cfg, listener, speaker, clock, stop)
    finally:
        stop.set()
        if controls is not None:
            controls.close()  # no waiting announcement starts during the shutdown
        home.close()
        await listener.aclose()
        await conv.aclose()  # the reply that was playing ends here, logged as "shutdown"
        # The bridge publishes offline and disconnects on stop; bounded, so a
        # broker that does not answer cannot hold the shutdown.
        with contextlib.suppress(TimeoutError):
            await race(asyncio.gather(*side, return_exceptions=True), timeout=1.5)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return code


async def _paced(cfg, listener, speaker, clock, source, sink, stop) -> None:  # type: ignore[no-untyped-def]
    """Files and pipes: the input is followed by silence until stopped."""
    driver = PacedDuplex(
        EndlessInput(source), sink, speaker, clock, block_samples(cfg),
        echo_canceller=make_echo_canceller(cfg, known_delay_ms=0),
    )
    await driver.run(listener, stop=stop)


async def _devices(cfg, listener, speaker, clock, stop) -> None:  # type: ignore[no-untyped-def]
    """Sound devices. A device missing at start-up is an error (systemd retries);
    one that goes away later is retried every ``DEVICE_RETRY_S`` while the
    conversation runs on silence, so Home Assistant's commands are still carried
    out (and logged), only not heard."""
    from voiceagent.audio.devices import resolve_device

    def devices() -> tuple[int | None, int | None]:
        return (
            resolve_device(cfg.audio.input_device, "input"),
            resolve_device(cfg.audio.output_device, "output"),
        )

    in_dev, out_dev = devices()
    blocks = 0  # one timeline across drivers: wake words and utterances compare times
    while not stop.is_set():
        driver = DeviceDuplex(
            speaker, clock, block_samples(cfg), in_dev, out_dev,
            echo_canceller=make_echo_canceller(cfg),
            echo_delay_ms=None if cfg.echo.delay_ms == "auto" else cfg.echo.delay_ms,
            start_block=blocks,
        )
        try:
            await driver.run(listener, stop)
            return
        except AudioDeviceError as err:
            logger.error(
                "%s; retrying every %.0f s (Home Assistant's commands are still carried out, "
                "but nothing is heard or played until the device is back)", err, DEVICE_RETRY_S,
            )
        finally:
            blocks = driver.blocks_done
        listener.conv.stop()  # what was playing can no longer be heard
        while not stop.is_set():
            blocks = await _without_devices(cfg, listener, speaker, clock, stop, blocks)
            _rescan_devices()
            try:
                in_dev, out_dev = devices()
                logger.info("audio devices listed again; reopening them")
                break
            except AudioDeviceError as err:
                logger.debug("still no audio device: %s", err)


async def _without_devices(cfg, listener, speaker, clock, stop, blocks: int) -> int:  # type: ignore[no-untyped-def]
    """Run the conversation on silence, output to nowhere, for ``DEVICE_RETRY_S``
    (or until stopped)."""
    driver = PacedDuplex(SilenceInput(), NullOutput(), speaker, clock, block_samples(cfg), start_block=blocks)
    with contextlib.suppress(TimeoutError):  # between blocks: nothing is left half done
        await race(driver.run(listener, stop=stop), timeout=DEVICE_RETRY_S)
    return driver.blocks_done


def _rescan_devices() -> None:
    """PortAudio lists devices once per initialisation: a re-plugged USB microphone
    is only seen after re-initialising it."""
    import sounddevice as sd

    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as err:
        logger.debug("re-initialising PortAudio failed: %s", err)
