"""Sound devices as a session's audio: a PortAudio duplex stream (sounddevice).

``DeviceDuplex`` plays one output block per input block, as the paced driver
does. When its callbacks stop for a while (the process descheduled on a busy
box) the input lags the output by more from then on; it tells the canceller how
far the echo moved (``rules.stalls``) so that it stays aligned.

``DeviceTransport`` is a session's pair of devices, kept alive: a device missing
at start-up is an error (systemd retries), one that goes away later is retried
every ``DEVICE_RETRY_S`` while the session runs on silence, so Home Assistant's
commands are still carried out (and logged), only not heard. The other sessions
of the process go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import numpy as np

from voiceagent.aio import race
from voiceagent.audio.echo import EchoCanceller, NoEchoCanceller
from voiceagent.audio.speaker import PlaybackNotice, Speaker
from voiceagent.clock import Clock
from voiceagent.config import Config
from voiceagent.errors import AudioDeviceError
from voiceagent.rules.stalls import MIN_SHIFT_MS, StallWatch
from voiceagent.transports.base import BlockHandler, block_samples, make_echo_canceller
from voiceagent.transports.paced import silent_driver

logger = logging.getLogger(__name__)

DEVICE_RETRY_S = 5.0
"""Seconds between attempts to reopen a sound device that went away."""


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
            _open_streams[0] += 1
            try:
                return await self._run_stream(stream, queue, handler, stop, canceller, delay_ms)
            finally:
                _open_streams[0] -= 1
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


class DeviceTransport:
    """A session's input and output devices (names or indexes, as configured)."""

    def __init__(self, cfg: Config, input_device: str | int | None, output_device: str | int | None,
                 *, retry: bool = True) -> None:
        self.cfg = cfg
        self.input_device = input_device
        self.output_device = output_device
        self.retry = retry
        """False (``talk``): a device that goes away ends the run with its error."""
        self.description = f"devices {input_device if input_device is not None else 'default'}/" \
            f"{output_device if output_device is not None else 'default'}"
        self.devices = self._resolve()  # a device missing at start-up fails now

    def _resolve(self) -> tuple[int | None, int | None]:
        from voiceagent.audio.devices import resolve_device

        return resolve_device(self.input_device, "input"), resolve_device(self.output_device, "output")

    def _driver(self, speaker: Speaker, clock: Clock, blocks: int) -> DeviceDuplex:
        cfg = self.cfg
        return DeviceDuplex(
            speaker, clock, block_samples(cfg), *self.devices,
            echo_canceller=make_echo_canceller(cfg),
            echo_delay_ms=None if cfg.echo.delay_ms == "auto" else cfg.echo.delay_ms,
            start_block=blocks,
        )

    async def run(self, handler: BlockHandler, speaker: Speaker, clock: Clock, stop: asyncio.Event) -> float:
        blocks = 0  # one timeline across drivers: wake words and utterances compare times
        while not stop.is_set():
            driver = self._driver(speaker, clock, blocks)
            try:
                await driver.run(handler, stop)
                break
            except AudioDeviceError as err:
                if not self.retry:
                    raise
                logger.error(
                    "%s; retrying every %.0f s (Home Assistant's commands are still carried out, "
                    "but nothing is heard or played until the device is back)", err, DEVICE_RETRY_S,
                )
            finally:
                blocks = driver.blocks_done
            stop_replies = getattr(handler, "stop_replies", None)
            if stop_replies is not None:
                stop_replies()  # what was playing can no longer be heard
            while not stop.is_set():
                blocks = await self._without_devices(handler, speaker, clock, stop, blocks)
                rescan_devices()
                try:
                    self.devices = self._resolve()
                    logger.info("audio devices listed again; reopening them")
                    break
                except AudioDeviceError as err:
                    logger.debug("still no audio device: %s", err)
        return blocks * block_samples(self.cfg) / self.cfg.audio.sample_rate

    async def _without_devices(self, handler: BlockHandler, speaker: Speaker, clock: Clock,
                               stop: asyncio.Event, blocks: int) -> int:
        """Run the session on silence, output to nowhere, for ``DEVICE_RETRY_S``
        (or until stopped)."""
        driver = silent_driver(speaker, clock, block_samples(self.cfg), blocks)
        with contextlib.suppress(TimeoutError):  # between blocks: nothing is left half done
            await race(driver.run(handler, stop=stop), timeout=DEVICE_RETRY_S)
        return driver.blocks_done

    def close(self) -> None:
        pass  # each driver closes its stream when its run ends


_open_streams = [0]
"""Device streams of this process that are open (every room's)."""
_last_rescan = 0.0


def rescan_devices() -> None:
    """PortAudio lists devices once per initialisation: a re-plugged USB microphone
    is only seen after re-initialising it. That is process-wide, and it would
    pull the stream from under another room, so it is done at most once per
    retry period, and only while this process has no other stream open
    (sounddevice keeps PortAudio initialised while one is)."""
    global _last_rescan
    import sounddevice as sd

    if time.monotonic() - _last_rescan < DEVICE_RETRY_S * 0.9:
        return  # another room that lost its device just did it
    _last_rescan = time.monotonic()
    if _open_streams[0]:  # Pa_Terminate would close another room's stream
        logger.debug("not re-listing audio devices: %d other stream(s) open", _open_streams[0])
        return
    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as err:
        logger.debug("re-initialising PortAudio failed: %s", err)
